import { ConfigError } from '../errors.ts';

export type S3Location = { bucket: string; key: string };

/** Splits `s3://bucket/key` into its parts; anything else is a ConfigError naming the value. */
export function parseS3Uri(uri: string): S3Location {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!match?.[1]) {
    throw new ConfigError(`"${uri}" is not an S3 URI: expected s3://<bucket>/<key>`, { uri });
  }
  return { bucket: match[1], key: match[2] ?? '' };
}
