import { azureErrors } from '../errors.js';
import type { BlockListItem } from '../storage/types.js';

/**
 * A small strict parser for Put Block List bodies (docs/protocol.md §5.6):
 * `<BlockList>` holding `<Latest>`, `<Committed>` and `<Uncommitted>` elements, kept in document
 * order. Accepts an optional XML declaration, BOM, comments, processing instructions, whitespace,
 * attributes (ignored), CDATA, the predefined and numeric character references, and a self-closing
 * root. Rejects DOCTYPE (so no entity expansion), unknown elements, stray text and anything not
 * well formed with `InvalidXmlDocument`. Ids are trimmed; their validity is the caller's business.
 */
export function parseBlockListXml(xml: string): BlockListItem[] {
  return new Parser(xml).document();
}

const KINDS: Readonly<Record<string, BlockListItem['kind']>> = {
  Latest: 'latest',
  Committed: 'committed',
  Uncommitted: 'uncommitted',
};

const NAME = /[A-Za-z_:][\w.:-]*/y;
const SPACE = /[ \t\r\n]*/y;
const ATTRIBUTE = /([A-Za-z_:][\w.:-]*)[ \t\r\n]*=[ \t\r\n]*(?:"[^"<]*"|'[^'<]*')/y;
const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

class Parser {
  private pos = 0;
  constructor(private readonly s: string) {}

  document(): BlockListItem[] {
    if (this.s.startsWith('\uFEFF')) this.pos = 1;
    if (this.s.startsWith('<?xml', this.pos) && /[ \t\r\n?]/.test(this.s[this.pos + 5] ?? '')) {
      this.skipPast('?>');
    }
    this.misc();
    const items = this.root();
    this.misc();
    if (this.pos !== this.s.length) throw this.malformed();
    return items;
  }

  private malformed(): Error {
    return azureErrors.invalidXml();
  }

  private space(): void {
    SPACE.lastIndex = this.pos;
    SPACE.exec(this.s);
    this.pos = SPACE.lastIndex;
  }

  private skipPast(terminator: string): string {
    const end = this.s.indexOf(terminator, this.pos);
    if (end < 0) throw this.malformed();
    const skipped = this.s.slice(this.pos, end);
    this.pos = end + terminator.length;
    return skipped;
  }

  /** Whitespace, comments and processing instructions between markup. */
  private misc(): void {
    for (;;) {
      this.space();
      if (this.s.startsWith('<!--', this.pos)) {
        this.pos += 4;
        if (this.skipPast('-->').includes('--')) throw this.malformed();
      } else if (this.s.startsWith('<?', this.pos)) {
        this.pos += 2;
        const target = this.name();
        if (target.toLowerCase() === 'xml') throw this.malformed();
        this.skipPast('?>');
      } else {
        return;
      }
    }
  }

  private name(): string {
    NAME.lastIndex = this.pos;
    const m = NAME.exec(this.s);
    if (!m) throw this.malformed();
    this.pos = NAME.lastIndex;
    return m[0];
  }

  private expect(text: string): void {
    if (!this.s.startsWith(text, this.pos)) throw this.malformed();
    this.pos += text.length;
  }

  /** `<Name attrs…` then `/>` (returns true) or `>` (returns false). */
  private startTag(): { name: string; empty: boolean } {
    this.expect('<');
    const name = this.name();
    for (;;) {
      const before = this.pos;
      this.space();
      if (this.s.startsWith('/>', this.pos)) {
        this.pos += 2;
        return { name, empty: true };
      }
      if (this.s.startsWith('>', this.pos)) {
        this.pos += 1;
        return { name, empty: false };
      }
      if (this.pos === before) throw this.malformed(); // attributes need leading whitespace
      ATTRIBUTE.lastIndex = this.pos;
      if (!ATTRIBUTE.exec(this.s)) throw this.malformed();
      this.pos = ATTRIBUTE.lastIndex;
    }
  }

  private endTag(name: string): void {
    this.expect('</');
    if (this.name() !== name) throw this.malformed();
    this.space();
    this.expect('>');
  }

  private root(): BlockListItem[] {
    if (this.s.startsWith('<!', this.pos)) throw this.malformed(); // DOCTYPE, CDATA outside the root
    const { name, empty } = this.startTag();
    if (name !== 'BlockList') throw this.malformed();
    const items: BlockListItem[] = [];
    if (empty) return items;
    for (;;) {
      this.misc();
      if (this.s.startsWith('</', this.pos)) {
        this.endTag('BlockList');
        return items;
      }
      if (!this.s.startsWith('<', this.pos)) throw this.malformed(); // stray text
      const child = this.startTag();
      const kind = KINDS[child.name];
      if (kind === undefined) throw this.malformed();
      const id = child.empty ? '' : this.text();
      if (!child.empty) this.endTag(child.name);
      items.push({ kind, id: id.trim() });
    }
  }

  /** Character data up to the next tag, with references and CDATA resolved; no child elements. */
  private text(): string {
    let out = '';
    for (;;) {
      const lt = this.s.indexOf('<', this.pos);
      if (lt < 0) throw this.malformed();
      out += this.references(this.s.slice(this.pos, lt));
      this.pos = lt;
      if (this.s.startsWith('<![CDATA[', this.pos)) {
        this.pos += 9;
        out += this.skipPast(']]>');
      } else if (this.s.startsWith('<!--', this.pos)) {
        this.pos += 4;
        if (this.skipPast('-->').includes('--')) throw this.malformed();
      } else {
        return out;
      }
    }
  }

  private references(raw: string): string {
    if (raw.includes(']]>')) throw this.malformed();
    return raw.replace(/&([^;&]*);|&/g, (_match, ref: string | undefined) => {
      if (ref === undefined) throw this.malformed(); // a bare `&`
      const predefined = PREDEFINED[ref];
      if (predefined !== undefined) return predefined;
      const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(ref);
      if (!m) throw this.malformed(); // an entity we do not (and must not) expand
      const code = m[1] !== undefined ? Number.parseInt(m[1], 16) : Number(m[2]);
      if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) throw this.malformed();
      return String.fromCodePoint(code);
    });
  }
}
