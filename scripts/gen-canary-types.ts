/**
 * Generates core/canary-types.gen.ts from crds/canaries.vane.dev.yaml, so that the CRD stays
 * the one source of truth for the Canary's shape: TypeScript interfaces (every field optional,
 * because core/ never trusts its input), the enums as const lists, and the schema defaults.
 *
 *   node scripts/gen-canary-types.ts          # rewrite the file
 *   node scripts/gen-canary-types.ts --check  # exit 1 when it is out of date
 *
 * tests/unit/canary/crd-types.test.ts runs the same generation and fails on any difference.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const CRD_PATH = fileURLToPath(new URL('../crds/canaries.vane.dev.yaml', import.meta.url));
export const GENERATED_PATH = fileURLToPath(new URL('../core/canary-types.gen.ts', import.meta.url));

/** JSONSchema is the subset of a CRD's OpenAPI v3 schema the generator and the tests read. */
export interface JSONSchema {
  type?: string;
  description?: string;
  properties?: Record<string, JSONSchema>;
  additionalProperties?: JSONSchema | boolean;
  items?: JSONSchema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  [keyword: string]: unknown;
}

/** Interface names by schema path (`[]` marks a list's items); other objects are inlined. */
const TYPE_NAMES: Record<string, string> = {
  'spec': 'CanarySpec',
  'spec.ingressRef': 'CanaryIngressRef',
  'spec.canaryService': 'CanaryServiceRef',
  'spec.canaryService.port': 'CanaryServicePort',
  'spec.traffic': 'CanaryTraffic',
  'spec.traffic.header': 'CanaryHeaderRule',
  'spec.traffic.cookie': 'CanaryCookieRule',
  'spec.analysis': 'CanaryAnalysis',
  'spec.analysis.metrics[]': 'CanaryMetric',
  'spec.analysis.metrics[].prometheus': 'CanaryPrometheusQuery',
  'spec.analysis.webhooks[]': 'CanaryWebhook',
  'spec.promotion': 'CanaryPromotion',
  'status': 'CanaryStatus',
  'status.lastChecks[]': 'CanaryCheckResult',
  'status.lastCommand': 'CanaryCommandResult',
  'status.retire': 'CanaryRetire',
  'status.proxies': 'CanaryProxies',
  'status.conditions[]': 'CanaryCondition',
};

/** Enum lists exported as constants (and a union type), by schema path. */
const ENUM_NAMES: Record<string, [constName: string, typeName: string]> = {
  'spec.analysis.webhooks[].type': ['WEBHOOK_TYPES', 'CanaryWebhookType'],
  'spec.promotion.strategy': ['PROMOTION_STRATEGIES', 'PromotionStrategy'],
  'status.phase': ['CANARY_PHASES', 'CanaryPhase'],
  'status.stage': ['CANARY_STAGES', 'CanaryStage'],
  'status.lastChecks[].kind': ['CHECK_KINDS', 'CheckKind'],
  'status.lastChecks[].result': ['CHECK_RESULTS', 'CheckResult'],
  'status.lastCommand.result': ['COMMAND_RESULTS', 'CommandResult'],
  'status.retire.reason': ['RETIRE_REASONS', 'RetireReason'],
  'status.conditions[].status': ['CONDITION_STATUSES', 'ConditionStatus'],
};

/** canarySchema returns the v1alpha1 openAPIV3Schema of the CRD text. */
export function canarySchema(crdText: string): JSONSchema {
  const crd = parse(crdText) as { spec?: { versions?: { name?: string; schema?: { openAPIV3Schema?: JSONSchema } }[] } };
  const schema = crd.spec?.versions?.find((v) => v.name === 'v1alpha1')?.schema?.openAPIV3Schema;
  if (!schema) throw new Error('CRD has no v1alpha1 openAPIV3Schema');
  return schema;
}

function comment(text: string | undefined, indent: string): string[] {
  if (!text) return [];
  const words = text.replace(/\s+/g, ' ').trim().replaceAll('*/', '*\\/').split(' ');
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && indent.length + 3 + line.length + 1 + w.length > 100) { lines.push(line); line = w; } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  if (lines.length === 1) return [`${indent}/** ${lines[0]} */`];
  return [`${indent}/**`, ...lines.map((l) => `${indent} * ${l}`), `${indent} */`];
}

interface Output {
  interfaces: string[];
  enums: string[];
  defaults: [string, unknown][];
}

function typeOf(schema: JSONSchema, path: string, out: Output, indent: string): string {
  if (schema.default !== undefined) out.defaults.push([path, schema.default]);
  // Enum fields stay `string` in the interfaces: objects from files are not checked before
  // they are read. The allowed values are exported as a const list and a union type.
  if (Array.isArray(schema.enum) && schema.type === 'string') {
    const named = ENUM_NAMES[path];
    if (!named) throw new Error(`${path}: enum without a name in ENUM_NAMES`);
    const [constName, typeName] = named;
    out.enums.push(
      ...comment(schema.description, ''),
      `export const ${constName} = [${schema.enum.map((v) => JSON.stringify(v)).join(', ')}] as const;`,
      `export type ${typeName} = typeof ${constName}[number];`,
      '',
    );
    return 'string';
  }
  switch (schema.type) {
    case 'string': return 'string';
    case 'integer':
    case 'number': return 'number';
    case 'boolean': return 'boolean';
    case 'array': {
      const item = typeOf(schema.items ?? {}, `${path}[]`, out, indent);
      return /^[\w.]+$/.test(item) ? `${item}[]` : `Array<${item}>`;
    }
    case 'object': {
      if (!schema.properties) {
        const ap = schema.additionalProperties;
        return `Record<string, ${typeof ap === 'object' ? typeOf(ap, `${path}.*`, out, indent) : 'unknown'}>`;
      }
      const name = TYPE_NAMES[path];
      const fieldIndent = name ? '  ' : `${indent}  `;
      const fields: string[] = [];
      for (const key of Object.keys(schema.properties)) {
        const child = schema.properties[key]!;
        fields.push(...comment(child.description, fieldIndent));
        fields.push(`${fieldIndent}${key}?: ${typeOf(child, path ? `${path}.${key}` : key, out, fieldIndent)};`);
      }
      if (!name) return `{\n${fields.join('\n')}\n${indent}}`;
      out.interfaces.push(...comment(schema.description, ''), `export interface ${name} {`, ...fields, '}', '');
      return name;
    }
    default:
      throw new Error(`${path}: no type`);
  }
}

/** generateCanaryTypes turns the CRD text into the source of core/canary-types.gen.ts. */
export function generateCanaryTypes(crdText: string): string {
  const root = canarySchema(crdText);
  const out: Output = { interfaces: [], enums: [], defaults: [] };
  for (const part of ['spec', 'status'] as const) {
    const schema = root.properties?.[part];
    if (!schema) throw new Error(`CRD schema has no ${part}`);
    typeOf(schema, part, out, '');
  }
  const defaults = out.defaults.map(([path, value]) => `  ${JSON.stringify(path)}: ${JSON.stringify(value)},`);
  return [
    '// Generated by scripts/gen-canary-types.ts from crds/canaries.vane.dev.yaml. Do not edit:',
    '// change the CRD and run `node scripts/gen-canary-types.ts`.',
    '',
    ...out.enums,
    ...out.interfaces,
    '/** Schema defaults by field path (`[]` marks list items), as the API server applies them. */',
    'export const CANARY_DEFAULTS: Readonly<Record<string, unknown>> = {',
    ...defaults,
    '};',
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = generateCanaryTypes(readFileSync(CRD_PATH, 'utf8'));
  if (process.argv.includes('--check')) {
    const current = readFileSync(GENERATED_PATH, 'utf8');
    if (current !== text) {
      console.error(`${GENERATED_PATH} is out of date: run node scripts/gen-canary-types.ts`);
      process.exitCode = 1;
    }
  } else {
    writeFileSync(GENERATED_PATH, text);
    console.error(`wrote ${GENERATED_PATH}`);
  }
}
