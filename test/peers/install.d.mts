// Types of install.mjs (plain JavaScript so that it runs on Node 20 without vitest).

export declare const SCCACHE_VERSION: string;
export declare const PEER_NAMES: readonly ['runc', 'cc', 'buildkit', 'go-actions-cache', 'sccache'];
export type PeerName = (typeof PEER_NAMES)[number];
export declare const DEFAULT_PEERS_DIR: string;

export interface PeerTimeoutsMs {
  readonly probe: number;
  readonly aptUpdate: number;
  readonly aptInstall: number;
  readonly goBuild: number;
  readonly goDownload: number;
  readonly goTestCompile: number;
  readonly pip: number;
}
export declare const DEFAULT_TIMEOUTS_MS: Readonly<PeerTimeoutsMs>;

export declare class PeerInstallError extends Error {
  readonly code: 'PEER_INSTALL_FAILED';
  readonly peer: string;
  readonly step: string;
  constructor(peer: string, step: string, message: string, options?: { cause?: unknown });
}

export interface InstalledPeers {
  runc?: { version: string; bin: string };
  cc?: { version: string; bin: string };
  buildkit?: { version: string; buildkitd: string; buildctl: string };
  'go-actions-cache'?: { version: string; srcDir: string };
  sccache?: { version: string; bin: string };
}

export interface InstallPeersOptions {
  /** Where the peers live; created when missing. */
  readonly dir: string;
  /** Default: all of PEER_NAMES. */
  readonly peers?: readonly PeerName[];
  /** Progress lines. Default: none. */
  readonly log?: (line: string) => void;
  /** Environment of the installer commands. Default: process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Per-step timeouts. Default: DEFAULT_TIMEOUTS_MS. */
  readonly timeoutsMs?: Partial<PeerTimeoutsMs>;
}

export declare function installPeers(options: InstallPeersOptions): Promise<InstalledPeers>;
