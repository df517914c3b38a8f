import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export type Subscription = { protocol: 'email' | 'https'; endpoint: string };

/**
 * Two topics: `page` receives only the composite incident alarm (one page per incident, and its
 * recovery), `warn` receives warning-level alarms for a team inbox. Publishers must use TLS.
 */
export class Notifications extends Construct {
  readonly page: sns.Topic;
  readonly warn: sns.Topic;

  constructor(
    scope: Construct,
    id: string,
    props: { resourcePrefix: string; page: Subscription[]; warn: Subscription[] },
  ) {
    super(scope, id);
    this.page = this.topic(
      'Page',
      `${props.resourcePrefix}-page`,
      'k2 offload: incidents (page on-call)',
      props.page,
    );
    this.warn = this.topic('Warn', `${props.resourcePrefix}-warn`, 'k2 offload: warnings', props.warn);
  }

  private topic(id: string, topicName: string, displayName: string, subs: Subscription[]): sns.Topic {
    const topic = new sns.Topic(this, id, { topicName, displayName, enforceSSL: true });
    for (const s of subs)
      topic.addSubscription(
        s.protocol === 'email'
          ? new subscriptions.EmailSubscription(s.endpoint)
          : new subscriptions.UrlSubscription(s.endpoint, { protocol: sns.SubscriptionProtocol.HTTPS }),
      );
    return topic;
  }
}
