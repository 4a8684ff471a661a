/**
 * A small validator for the subset of a CRD's structural OpenAPI v3 schema that
 * crds/canaries.vane.dev.yaml uses — defaulting, types, bounds, patterns, list-map keys — and
 * its CEL rules, evaluated by a real CEL interpreter with Kubernetes' `isSorted()` list
 * function added. It applies defaults first and reports field paths the way the API server
 * does, so tests can compare its verdict with core's validate(). It throws on any keyword it
 * does not implement, so a CRD change cannot slip past it unchecked.
 */
import { Environment } from '@marcbachmann/cel-js';
import type { JSONSchema } from '../../../scripts/gen-canary-types.ts';

export interface SchemaError {
  path: string;
  message: string;
}

const KNOWN = new Set([
  'type', 'description', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'default',
  'minimum', 'maximum', 'exclusiveMinimum', 'minLength', 'maxLength', 'pattern', 'format', 'minItems', 'maxItems',
  'maxProperties', 'x-kubernetes-validations', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys',
]);

interface Rule { rule: string; message?: string; fieldPath?: string; reason?: string }

function isSorted(list: unknown[]): boolean {
  for (let i = 1; i < list.length; i++) if ((list[i - 1] as bigint) > (list[i] as bigint)) return false;
  return true;
}

const cel = new Environment({ unlistedVariablesAreDyn: true })
  .registerFunction({ name: 'isSorted', receiverType: 'list', returnType: 'bool', params: [], handler: isSorted });

const compiled = new Map<string, ReturnType<typeof cel.parse>>();

/** compileRule parses a CEL rule once; it throws on a syntax error, as CRD registration would fail. */
export function compileRule(rule: string): ReturnType<typeof cel.parse> {
  let fn = compiled.get(rule);
  if (!fn) { fn = cel.parse(rule); compiled.set(rule, fn); }
  return fn;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** applyDefaults fills schema defaults in place, parents first, as the API server does on read and write. */
export function applyDefaults(schema: JSONSchema, value: unknown): unknown {
  if (isObject(value) && schema.properties) {
    for (const [key, child] of Object.entries(schema.properties)) {
      if (value[key] === undefined && child.default !== undefined) value[key] = structuredClone(child.default);
      if (value[key] !== undefined) value[key] = applyDefaults(child, value[key]);
    }
  } else if (Array.isArray(value) && schema.items) {
    for (let i = 0; i < value.length; i++) value[i] = applyDefaults(schema.items, value[i]);
  }
  return value;
}

/** toCel converts JSON to CEL values by schema type: integers become int (bigint), numbers double. */
function toCel(schema: JSONSchema, value: unknown): unknown {
  if (schema.type === 'integer' && typeof value === 'number') return BigInt(value);
  if (Array.isArray(value)) return value.map((v) => toCel(schema.items ?? {}, v));
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const child = schema.properties?.[k] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : {});
      out[k] = toCel(child, v);
    }
    return out;
  }
  return value;
}

function typeError(schema: JSONSchema, value: unknown): string | null {
  switch (schema.type) {
    case 'object': return isObject(value) ? null : 'must be an object';
    case 'array': return Array.isArray(value) ? null : 'must be a list';
    case 'string': return typeof value === 'string' ? null : 'must be a string';
    case 'integer': return typeof value === 'number' && Number.isInteger(value) ? null : 'must be an integer';
    case 'number': return typeof value === 'number' && Number.isFinite(value) ? null : 'must be a number';
    case 'boolean': return typeof value === 'boolean' ? null : 'must be a boolean';
    default: return null;
  }
}

function walk(schema: JSONSchema, value: unknown, path: string, errors: SchemaError[]): void {
  for (const key of Object.keys(schema)) if (!KNOWN.has(key)) throw new Error(`${path}: schema keyword ${key} is not implemented by the test validator`);
  const bad = typeError(schema, value);
  if (bad) { errors.push({ path, message: bad }); return; }
  const before = errors.length;
  if (schema.enum && !schema.enum.includes(value)) errors.push({ path, message: `must be one of ${schema.enum.join(', ')}` });
  if (typeof value === 'number') {
    const min = schema.minimum as number | undefined;
    if (min !== undefined && (schema.exclusiveMinimum === true ? value <= min : value < min)) errors.push({ path, message: `must be ${schema.exclusiveMinimum ? '>' : '≥'} ${min}` });
    if (schema.maximum !== undefined && value > (schema.maximum as number)) errors.push({ path, message: `must be ≤ ${schema.maximum as number}` });
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < (schema.minLength as number)) errors.push({ path, message: 'too short' });
    if (schema.maxLength !== undefined && length > (schema.maxLength as number)) errors.push({ path, message: 'too long' });
    if (schema.pattern !== undefined && !new RegExp(schema.pattern as string).test(value)) errors.push({ path, message: `must match ${schema.pattern as string}` });
    if (schema.format === 'date-time' && !Number.isFinite(Date.parse(value))) errors.push({ path, message: 'must be a date-time' });
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < (schema.minItems as number)) errors.push({ path, message: 'too few items' });
    if (schema.maxItems !== undefined && value.length > (schema.maxItems as number)) errors.push({ path, message: 'too many items' });
    value.forEach((item, i) => walk(schema.items ?? {}, item, `${path}[${i}]`, errors));
    if (schema['x-kubernetes-list-type'] === 'map') {
      const keys = schema['x-kubernetes-list-map-keys'] as string[];
      const seen = new Set<string>();
      value.forEach((item, i) => {
        const id = JSON.stringify(keys.map((k) => (isObject(item) ? item[k] : undefined)));
        if (seen.has(id)) errors.push({ path: `${path}[${i}]`, message: `duplicate entry for key ${id}` });
        seen.add(id);
      });
    }
  }
  if (isObject(value)) {
    for (const key of schema.required ?? []) if (value[key] === undefined) errors.push({ path: `${path}.${key}`, message: 'is required' });
    if (schema.maxProperties !== undefined && Object.keys(value).length > (schema.maxProperties as number)) errors.push({ path, message: 'too many properties' });
    for (const [key, child] of Object.entries(value)) {
      const sub = schema.properties?.[key] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties as JSONSchema : undefined);
      if (!sub) { errors.push({ path: `${path}.${key}`, message: 'unknown field' }); continue; }
      walk(sub, child, `${path}.${key}`, errors);
    }
  }
  // Only verdicts and field paths matter to the tests: a scalar that already failed its
  // schema would add nothing by failing its rules too.
  if (errors.length > before && !isObject(value) && !Array.isArray(value)) return;
  for (const r of (schema['x-kubernetes-validations'] ?? []) as Rule[]) {
    let ok: unknown;
    try {
      ok = compileRule(r.rule)({ self: toCel(schema, value) });
    } catch (err) {
      ok = false;
      errors.push({ path: path + (r.fieldPath ?? ''), message: `rule evaluation error: ${(err as Error).message.split('\n')[0]}` });
      continue;
    }
    if (ok !== true) errors.push({ path: path + (r.fieldPath ?? ''), message: r.message ?? `failed rule: ${r.rule}` });
  }
}

/** validateAgainst checks value against schema (after defaulting a copy) and lists the errors. */
export function validateAgainst(schema: JSONSchema, value: unknown, path: string): SchemaError[] {
  const errors: SchemaError[] = [];
  walk(schema, applyDefaults(schema, structuredClone(value)), path, errors);
  return errors;
}

/** eachSchema visits every schema node with its path (`[]` for list items, `.*` for map values). */
export function eachSchema(schema: JSONSchema, path: string, visit: (node: JSONSchema, path: string) => void): void {
  visit(schema, path);
  for (const [key, child] of Object.entries(schema.properties ?? {})) eachSchema(child, `${path}.${key}`, visit);
  if (schema.items) eachSchema(schema.items, `${path}[]`, visit);
  if (isObject(schema.additionalProperties)) eachSchema(schema.additionalProperties as JSONSchema, `${path}.*`, visit);
}
