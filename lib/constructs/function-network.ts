import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import type { StageConfig } from '../stage-config.ts';

/** Where the functions that reach ClickHouse or Postgres run. */
export type FunctionVpc = { vpc: ec2.IVpc; subnets: ec2.ISubnet[]; securityGroups: ec2.ISecurityGroup[] };

/**
 * The stage's VPC, subnets and the functions' security groups; with egress `endpoints`, the VPC endpoints
 * of the only AWS APIs the functions call (the IAM contract test records them: S3, Glue, Secrets
 * Manager). Logs and metrics leave through the Lambda service, not the VPC.
 */
export class FunctionNetwork extends Construct {
  readonly access: FunctionVpc;
  readonly endpoints: ec2.IVpcEndpoint[] = [];

  constructor(scope: Construct, id: string, props: { vpc: NonNullable<StageConfig['vpc']> }) {
    super(scope, id);
    const v = props.vpc;
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: v.vpcId,
      availabilityZones: v.availabilityZones,
      privateSubnetIds: v.subnetIds,
    });
    const securityGroups =
      v.securityGroupIds.length > 0
        ? v.securityGroupIds.map((sg, i) => ec2.SecurityGroup.fromSecurityGroupId(this, `Sg${i}`, sg))
        : [
            new ec2.SecurityGroup(this, 'FunctionsSg', {
              vpc,
              description: 'k2-offload functions: outbound to ClickHouse, Postgres and AWS APIs',
              allowAllOutbound: true,
            }),
          ];
    const subnets = v.subnetIds.map((subnetId, i) => {
      const routeTableId = v.routeTableIds[i];
      return ec2.Subnet.fromSubnetAttributes(this, `Subnet${i}`, {
        subnetId,
        ...(routeTableId ? { routeTableId } : {}),
      });
    });
    this.access = { vpc, subnets, securityGroups };
    if (v.egress !== 'endpoints') return;

    this.endpoints.push(
      new ec2.GatewayVpcEndpoint(this, 'S3', {
        vpc,
        service: ec2.GatewayVpcEndpointAwsService.S3,
        subnets: [{ subnets }],
      }),
    );
    const endpointSg = new ec2.SecurityGroup(this, 'EndpointsSg', {
      vpc,
      description: 'k2-offload VPC interface endpoints: HTTPS from the functions only',
      allowAllOutbound: false,
    });
    for (const sg of securityGroups)
      endpointSg.addIngressRule(
        ec2.Peer.securityGroupId(sg.securityGroupId),
        ec2.Port.tcp(443),
        'k2-offload functions',
      );
    for (const [name, service] of [
      ['SecretsManager', ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
      ['Glue', ec2.InterfaceVpcEndpointAwsService.GLUE],
    ] as const)
      this.endpoints.push(
        new ec2.InterfaceVpcEndpoint(this, name, {
          vpc,
          service,
          subnets: { subnets },
          securityGroups: [endpointSg],
          privateDnsEnabled: true,
          // Only the functions' security groups (above), not the whole VPC's range.
          open: false,
        }),
      );
  }
}
