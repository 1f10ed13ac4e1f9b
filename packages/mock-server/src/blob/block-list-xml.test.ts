import { describe, expect, it } from 'vitest';
import { AzureError } from '../errors.js';
import { validateBlockId } from './block-id.js';
import { parseBlockListXml } from './block-list-xml.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AzureError);
    return (err as AzureError).code;
  }
  return 'no error';
};

describe('parseBlockListXml', () => {
  it('C-70: accepts the JS, GO and RS bodies and keeps document order', () => {
    const js =
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><BlockList><Latest>QUFB</Latest><Latest>QkJC</Latest></BlockList>';
    const go =
      '<?xml version="1.0" encoding="UTF-8"?>\n<BlockList><Latest>QUFB</Latest><Latest>QkJC</Latest></BlockList>';
    const rs = '<BlockList>\n  <Latest>QUFB</Latest>\n  <Latest>QkJC</Latest>\n</BlockList>\n';
    for (const body of [js, go, rs, `\uFEFF${rs}`]) {
      expect(parseBlockListXml(body)).toEqual([
        { kind: 'latest', id: 'QUFB' },
        { kind: 'latest', id: 'QkJC' },
      ]);
    }
  });

  it('C-69/C-70: Committed, Uncommitted, Latest in document order; empty and self-closing roots', () => {
    const xml =
      '<?xml version="1.0"?><!-- c --><BlockList xmlns:x="y"><Uncommitted>QQ==</Uncommitted>' +
      '<Committed> Qg== </Committed><Latest>Qw==</Latest><Committed><![CDATA[RA==]]></Committed>' +
      '<Latest>&#82;Q&#x3d;&#61;</Latest></BlockList>';
    expect(parseBlockListXml(xml)).toEqual([
      { kind: 'uncommitted', id: 'QQ==' },
      { kind: 'committed', id: 'Qg==' },
      { kind: 'latest', id: 'Qw==' },
      { kind: 'committed', id: 'RA==' },
      { kind: 'latest', id: 'RQ==' },
    ]);
    expect(parseBlockListXml('<BlockList/>')).toEqual([]);
    expect(parseBlockListXml('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><BlockList />')).toEqual(
      [],
    );
    expect(parseBlockListXml('<BlockList></BlockList>')).toEqual([]);
  });

  it('C-71: malformed XML, DOCTYPE/entities, unknown elements and stray text → InvalidXmlDocument', () => {
    const bad = [
      '',
      'not xml',
      '<BlockList>',
      '<BlockList><Latest>QQ==</Latest>',
      '<BlockList><Latest>QQ==</Committed></BlockList>',
      '<BlockList><Latest>QQ==</Latest></BlockList><BlockList/>',
      '<BlockList>QQ==</BlockList>',
      '<BlockList><Foo>QQ==</Foo></BlockList>',
      '<BlockList><Latest><Latest>QQ==</Latest></Latest></BlockList>',
      '<Blocks><Latest>QQ==</Latest></Blocks>',
      '<blocklist><latest>QQ==</latest></blocklist>',
      '<!DOCTYPE BlockList [<!ENTITY a "aaaa">]><BlockList><Latest>&a;</Latest></BlockList>',
      '<BlockList><Latest>&a;</Latest></BlockList>',
      '<BlockList><Latest>A&B</Latest></BlockList>',
      '<BlockList><Latest>&#0;</Latest></BlockList>',
      '<BlockList attr=1/>',
      'junk<?xml version="1.0"?><BlockList/>',
      '<BlockList/><?xml version="1.0"?>',
    ];
    for (const xml of bad)
      expect(
        code(() => parseBlockListXml(xml)),
        xml,
      ).toBe('InvalidXmlDocument');
  });
});

describe('validateBlockId', () => {
  it('C-72: JS (48-byte), GO (64-byte) and RS (16-byte) ids are valid', () => {
    expect(validateBlockId(Buffer.alloc(48, 'a').toString('base64'))).toBe(48);
    expect(validateBlockId(Buffer.alloc(64, 0xfb).toString('base64'))).toBe(64);
    expect(validateBlockId(Buffer.alloc(16, 0xff).toString('base64'))).toBe(16);
  });

  it('C-64: non-canonical base64 or more than 64 decoded bytes → InvalidBlockId', () => {
    for (const bad of ['', 'QQ', 'QQ=', 'QR==', 'Q===', 'QUFB QUFB', '****', 'QUFB\n', 'QUFB-_==']) {
      expect(
        code(() => validateBlockId(bad)),
        bad,
      ).toBe('InvalidBlockId');
    }
    expect(code(() => validateBlockId(Buffer.alloc(65).toString('base64')))).toBe('InvalidBlockId');
  });
});
