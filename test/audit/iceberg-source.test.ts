import { describe, expect, it } from 'vitest';
import { icebergTableFunction } from '../../src/audit/iceberg-source.ts';
import { InputError } from '../../src/errors.ts';

/**
 * Where ClickHouse's own Iceberg reader is pointed: the table root and the exact metadata file the
 * catalog names. A wrong root or file makes the audit and the checks read another table state (or
 * none) and still print a verdict. The local form is read back by chDB in the audit and rig suites;
 * the S3 form by the S3 suites. Here: that each location maps to the reader's arguments exactly.
 */
const SETTINGS = "SETTINGS iceberg_metadata_file_path = 'metadata/00003-abc.metadata.json'";

describe("the Iceberg reader's source", () => {
  it('a local table: its folder (percent-escapes decoded) and the metadata file relative to it', () => {
    expect(icebergTableFunction('file:///data/wh/cold/trades/metadata/00003-abc.metadata.json')).toBe(
      `icebergLocal('/data/wh/cold/trades', ${SETTINGS})`,
    );
    expect(icebergTableFunction('file:///data/my%20wh/it%27s/metadata/00003-abc.metadata.json')).toBe(
      `icebergLocal('/data/my wh/it\\'s', ${SETTINGS})`,
    );
  });

  it("an S3 table on AWS: the bucket's regional endpoint, the region given or us-east-1", () => {
    const at = 's3://lake/cold/trades/metadata/00003-abc.metadata.json';
    expect(icebergTableFunction(at, { region: 'eu-west-1' })).toBe(
      `icebergS3('https://lake.s3.eu-west-1.amazonaws.com/cold/trades/', ${SETTINGS})`,
    );
    expect(icebergTableFunction(at)).toBe(
      `icebergS3('https://lake.s3.us-east-1.amazonaws.com/cold/trades/', ${SETTINGS})`,
    );
    // A table at the bucket's root: the bucket itself, no empty folder after it.
    expect(icebergTableFunction('s3://lake/metadata/00003-abc.metadata.json', { region: 'eu-west-1' })).toBe(
      `icebergS3('https://lake.s3.eu-west-1.amazonaws.com/', ${SETTINGS})`,
    );
    expect(icebergTableFunction(at.replace('s3://', 's3a://'), { region: 'eu-west-1' })).toBe(
      `icebergS3('https://lake.s3.eu-west-1.amazonaws.com/cold/trades/', ${SETTINGS})`,
    );
  });

  it('an S3 endpoint of its own (LocalStack, MinIO): path-style under it, trailing slashes dropped', () => {
    const at = 's3://lake/cold/trades/metadata/00003-abc.metadata.json';
    const url = "'http://localhost:4566/lake/cold/trades/'";
    expect(icebergTableFunction(at, { region: 'us-east-1', endpoint: 'http://localhost:4566' })).toBe(
      `icebergS3(${url}, ${SETTINGS})`,
    );
    expect(icebergTableFunction(at, { region: 'us-east-1', endpoint: 'http://localhost:4566//' })).toBe(
      `icebergS3(${url}, ${SETTINGS})`,
    );
    expect(
      icebergTableFunction('s3://lake/metadata/00003-abc.metadata.json', {
        region: 'x',
        endpoint: 'http://h:1',
      }),
    ).toBe(`icebergS3('http://h:1/lake/', ${SETTINGS})`);
  });

  it('credentials when both key parts are given, the session token after them; none otherwise', () => {
    const at = 's3://lake/t/metadata/00003-abc.metadata.json';
    const url = "'https://lake.s3.us-east-1.amazonaws.com/t/'";
    const keys = { region: 'us-east-1', accessKeyId: 'AKIA1', secretAccessKey: "se'cret" };
    expect(icebergTableFunction(at, keys)).toBe(`icebergS3(${url}, 'AKIA1', 'se\\'cret', ${SETTINGS})`);
    expect(icebergTableFunction(at, { ...keys, sessionToken: 'tok' })).toBe(
      `icebergS3(${url}, 'AKIA1', 'se\\'cret', 'tok', ${SETTINGS})`,
    );
    // Half a key pair is no key: the reader falls back to its own credentials (the role, the environment).
    expect(icebergTableFunction(at, { region: 'us-east-1', accessKeyId: 'AKIA1' })).toBe(
      `icebergS3(${url}, ${SETTINGS})`,
    );
    expect(icebergTableFunction(at, { region: 'us-east-1', secretAccessKey: 'x', sessionToken: 't' })).toBe(
      `icebergS3(${url}, ${SETTINGS})`,
    );
  });

  it('refuses a location with no metadata folder, or a scheme it cannot read, naming the location', () => {
    const noFolder = () => icebergTableFunction('file:///data/wh/t/00003-abc.metadata.json');
    expect(noFolder).toThrow(InputError);
    expect(noFolder).toThrow(
      /file:\/\/\/data\/wh\/t\/00003-abc\.metadata\.json is not under a metadata\/ folder/,
    );
    const gcs = () => icebergTableFunction('gs://lake/t/metadata/00003-abc.metadata.json');
    expect(gcs).toThrow(InputError);
    expect(gcs).toThrow(/cannot read Iceberg at gs:\/\/lake\/t: only file:\/\/ and s3:\/\/ warehouses/);
    // A scheme that merely ends in s3 is not S3.
    expect(() => icebergTableFunction('mys3://lake/t/metadata/00003-abc.metadata.json')).toThrow(
      /cannot read Iceberg at mys3:\/\/lake\/t/,
    );
    // The location travels with each refusal, for the JSON output.
    for (const refused of [noFolder, gcs])
      expect(refused).toThrow(
        expect.objectContaining({ details: { metadataLocation: expect.stringMatching(/00003-abc/) } }),
      );
  });
});
