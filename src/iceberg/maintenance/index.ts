export {
  type CompactionGroup,
  type CompactionOptions,
  type CompactRequest,
  type CompactResult,
  compactPartition,
  compactTable,
  planCompaction,
} from './compact.ts';
export { type ExpireRequest, type ExpireResult, expireSnapshots, snapshotsToExpire } from './expire.ts';
export {
  DEFAULT_ORPHAN_GRACE_MS,
  type OrphanRequest,
  type OrphanResult,
  referencedFiles,
  removeOrphanFiles,
} from './orphans.ts';
export { type MaintenanceDeps, ManifestReader } from './reachable.ts';
export type { Rewritten } from './replace.ts';
export {
  clickhouseRewriter,
  parquetFunction,
  type RewriteJob,
  type Rewriter,
  rewriteSql,
  type S3Access,
} from './rewrite.ts';
