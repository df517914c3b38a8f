import { App, Stack } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { describe, expect, it } from 'vitest';
import { addNagChecks } from '../../lib/nag.ts';

describe('cdk-nag AwsSolutions checks', () => {
  it('stop synthesis on a finding that is not acknowledged', () => {
    const app = new App();
    new s3.Bucket(new Stack(app, 'Bad'), 'Open');
    addNagChecks(app);
    expect(() => app.synth()).toThrow(/S3 Bucket[\s\S]*\(AwsSolutions\)/);
  });
});
