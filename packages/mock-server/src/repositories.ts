/**
 * Which repository name (`owner/repo`, as in the REST API's paths) is which repository id (the
 * runtime token's `repository_id`, the storage partition). Names compare case-insensitively, as GitHub's.
 */

export interface Repository {
  /** `owner/repo`, as registered. */
  readonly fullName: string;
  /** The runtime token's `repository_id` (a decimal string). */
  readonly id: string;
}

export interface RepositoryRegistryOptions {
  /** Extra repositories: `{ 'octo-org/hello-world': '42' }`. */
  readonly repositories?: Readonly<Record<string, string>>;
  /** Name of the repository behind `defaultRepositoryId`. Default `octo-org/octo-repo`. */
  readonly defaultRepository?: string;
  /** Default `"1"`. */
  readonly defaultRepositoryId?: string;
}

export interface RepositoryRegistry {
  /** The repository of tokens without `repository_id` (and of `GITHUB_REPOSITORY` in the mock's exports). */
  readonly default: Repository;
  /** By `owner/repo`, case-insensitive; `undefined` if unknown. */
  byName(fullName: string): Repository | undefined;
  /** By id; `undefined` if no name is registered for it. */
  byId(id: string): Repository | undefined;
  /** Registers (or renames) a repository; a name already used by another id throws. */
  register(fullName: string, id: string): Repository;
  list(): Repository[];
}

export const DEFAULT_REPOSITORY = 'octo-org/octo-repo';

const FULL_NAME = /^[\w.-]+\/[\w.-]+$/;
const REPOSITORY_ID = /^[1-9]\d{0,18}$/;

/** Throws a `TypeError` naming the bad value. */
export function checkRepository(fullName: string, id: string): void {
  if (!FULL_NAME.test(fullName)) throw new TypeError(`invalid repository name "${fullName}" (owner/repo)`);
  if (!REPOSITORY_ID.test(id)) throw new TypeError(`invalid repository id "${id}" (a positive integer)`);
}

/** Parses `owner/repo` or `owner/repo=42` (the CLI's `--repository`); without `=id` the id is `fallbackId`. */
export function parseRepositorySpec(spec: string, fallbackId: string): Repository {
  const i = spec.indexOf('=');
  const repo =
    i < 0 ? { fullName: spec, id: fallbackId } : { fullName: spec.slice(0, i), id: spec.slice(i + 1) };
  checkRepository(repo.fullName, repo.id);
  return repo;
}

export function createRepositoryRegistry(options: RepositoryRegistryOptions = {}): RepositoryRegistry {
  const byName = new Map<string, Repository>();
  const byId = new Map<string, Repository>();

  const register = (fullName: string, id: string): Repository => {
    checkRepository(fullName, id);
    const lower = fullName.toLowerCase();
    const taken = byName.get(lower);
    if (taken && taken.id !== id) {
      throw new TypeError(`repository "${fullName}" is already registered with id ${taken.id}`);
    }
    const previous = byId.get(id);
    if (previous) byName.delete(previous.fullName.toLowerCase());
    const repo: Repository = { fullName, id };
    byName.set(lower, repo);
    byId.set(id, repo);
    return repo;
  };

  const defaultRepo = register(
    options.defaultRepository ?? DEFAULT_REPOSITORY,
    options.defaultRepositoryId ?? '1',
  );
  for (const [fullName, id] of Object.entries(options.repositories ?? {})) register(fullName, id);

  return {
    get default() {
      return byId.get(defaultRepo.id) ?? defaultRepo;
    },
    byName: (fullName) => byName.get(fullName.toLowerCase()),
    byId: (id) => byId.get(id),
    register,
    list: () => [...byId.values()].sort((a, b) => Number(a.id) - Number(b.id)),
  };
}
