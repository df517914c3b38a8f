import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { isEmbedded, openClickHouse } from '../clickhouse/client.ts';
import { stringLiteral } from '../clickhouse/sql.ts';
import { InputError } from '../errors.ts';

export type S3Access = {
  endpoint?: string | undefined;
  region: string;
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  sessionToken?: string | undefined;
};

/**
 * ClickHouse's own Iceberg reader (`icebergLocal` / `icebergS3`) on one exact metadata file: the one
 * the catalog points at now, so the check reads the table as committed, not as a folder listing
 * guesses it. This reader shares no code with our writer, which is what makes it a check.
 */
export function icebergTableFunction(metadataLocation: string, s3?: S3Access): string {
  const at = metadataLocation.indexOf('/metadata/');
  if (at < 0)
    throw new InputError(
      `Iceberg metadata location ${metadataLocation} is not under a metadata/ folder; cannot derive the table root`,
      { metadataLocation },
    );
  const root = metadataLocation.slice(0, at);
  const settings = `SETTINGS iceberg_metadata_file_path = ${stringLiteral(metadataLocation.slice(at + 1))}`;
  if (root.startsWith('file://'))
    return `icebergLocal(${stringLiteral(decodeURIComponent(new URL(root).pathname))}, ${settings})`;
  const match = /^s3a?:\/\/([^/]+)\/?(.*)$/.exec(root);
  if (match) {
    const [, bucket, key] = match as unknown as [string, string, string];
    const region = s3?.region ?? 'us-east-1';
    // A table at the bucket's root has no folder: an empty one would read keys starting with '/'.
    const folder = key ? `${key}/` : '';
    const url = s3?.endpoint
      ? `${s3.endpoint.replace(/\/+$/, '')}/${bucket}/${folder}`
      : `https://${bucket}.s3.${region}.amazonaws.com/${folder}`;
    const keys =
      s3?.accessKeyId && s3.secretAccessKey
        ? `, ${stringLiteral(s3.accessKeyId)}, ${stringLiteral(s3.secretAccessKey)}${s3.sessionToken ? `, ${stringLiteral(s3.sessionToken)}` : ''}`
        : '';
    return `icebergS3(${stringLiteral(url)}${keys}, ${settings})`;
  }
  throw new InputError(`cannot read Iceberg at ${root}: only file:// and s3:// warehouses are supported`, {
    metadataLocation,
  });
}

/**
 * The session that reads Iceberg: the embedded ClickHouse itself when that is what we offload from
 * (one session sees both sides), otherwise a chDB session of our own beside a remote server.
 */
export function openIcebergReader(
  clickhouse: ClickHouseClient,
  home: string,
): { client: ClickHouseClient; close: () => Promise<void> } {
  if (isEmbedded(clickhouse)) return { client: clickhouse, close: async () => {} };
  const client = openClickHouse({ dataDir: join(home, 'chdb-reader') });
  return { client, close: () => client.close() };
}
