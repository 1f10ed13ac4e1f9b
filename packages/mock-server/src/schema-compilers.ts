/**
 * Fastify's own JSON Schema compilers (`@fastify/ajv-compiler`, `@fastify/fast-json-stringify-compiler`),
 * loaded when a route first declares a schema instead of when `Fastify()` runs: no route of the mock
 * or the proxy has one, so a start no longer builds ajv (a tenth of the start-up). A route added to
 * the app later with a schema still gets the usual validation and serialisation; the one difference
 * is Fastify's, for any factory given here: header names in a `headers` schema are not lower-cased.
 */
import { createRequire } from 'node:module';
import type { FastifyServerOptions } from 'fastify';

type Compilers = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type BuildValidator = NonNullable<Compilers['buildValidator']>;
type BuildSerializer = NonNullable<Compilers['buildSerializer']>;

/** Resolves the compilers Fastify itself depends on, in the versions it was released with. */
const fromFastify = () => createRequire(createRequire(import.meta.url).resolve('fastify'));

let validator: BuildValidator | undefined;
let serializer: BuildSerializer | undefined;

export const lazySchemaController: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: {
    buildValidator: (externalSchemas, options) => {
      validator ??= (fromFastify()('@fastify/ajv-compiler') as () => BuildValidator)();
      return validator(externalSchemas, options);
    },
    buildSerializer: (externalSchemas, options) => {
      serializer ??= (fromFastify()('@fastify/fast-json-stringify-compiler') as () => BuildSerializer)();
      return serializer(externalSchemas, options);
    },
  },
};
