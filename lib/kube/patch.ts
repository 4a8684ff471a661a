/**
 * RFC 6902 JSON patches (fast-json-patch) as Vane sends them: the difference between what was
 * read and what should be, guarded by a `test` of the resourceVersion it was computed from, so
 * that a concurrent writer makes the patch fail (409/422) instead of being overwritten.
 */
import fastJsonPatch from 'fast-json-patch';

export type PatchOp = fastJsonPatch.Operation;

/** versionTest is the `test` op that makes a patch apply only to the version it was computed from. */
export function versionTest(resourceVersion: string): PatchOp {
  return { op: 'test', path: '/metadata/resourceVersion', value: resourceVersion };
}

/**
 * fencedPatch prepends the resourceVersion `test` to ops (nothing when the object carries no
 * resourceVersion, as objects from files do).
 */
export function fencedPatch(ops: readonly PatchOp[], resourceVersion: string | undefined): PatchOp[] {
  return resourceVersion ? [versionTest(resourceVersion), ...ops] : [...ops];
}

/**
 * fieldPatch is the patch that turns the top-level field `field` of an object from `before`
 * into `after` (adding it whole when it was absent), guarded by resourceVersion. Empty when
 * nothing differs.
 */
export function fieldPatch(field: string, before: unknown, after: unknown, resourceVersion: string | undefined): PatchOp[] {
  const ops: PatchOp[] = before !== undefined && before !== null && typeof before === 'object'
    ? fastJsonPatch.compare({ [field]: before }, { [field]: after })
    : [{ op: 'add', path: `/${field}`, value: after }];
  return ops.length === 0 ? [] : fencedPatch(ops, resourceVersion);
}

/** compare is fast-json-patch's diff, for patches that need more than one field. */
export function compare(before: object, after: object): PatchOp[] {
  return fastJsonPatch.compare(before, after, true);
}
