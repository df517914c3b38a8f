import { main, releaseLeasesOnSignals } from '../src/cli/main.ts';

releaseLeasesOnSignals();

// Every handle (chDB, pools, an embedded Postgres) is closed by the commands; exit explicitly anyway so a
// stray timer in a dependency cannot keep a finished command alive.
const code = await main(process.argv.slice(2));
process.exit(code);
