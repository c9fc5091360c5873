// node-postgres through pgmux with settings given at connect: statement_timeout and
// lock_timeout as node-postgres sends them (startup parameters), options -c, and a SET
// after connect; each client checks its values on whichever server it gets, and that
// RESET returns to the startup value. Usage: node node_settings.js DSN CLIENTS ROUNDS.
// Prints "ok N" or exits non-zero.
const { Client } = require('pg');

async function worker(dsn, id, rounds) {
  const c = new Client({
    connectionString: dsn,
    statement_timeout: (10 + id) * 1000, // sent as the startup parameter statement_timeout
    lock_timeout: 2000,
    options: `-c myapp.client=${id}`,
    application_name: `node-${id}`,
  });
  await c.connect();
  let checked = 0;
  try {
    await c.query(`SET search_path TO public, "schema_${id}"`);
    for (let r = 0; r < rounds; r++) {
      const q = 'SELECT current_setting($1) AS a, current_setting($2) AS b, current_setting($3) AS c, ' +
        'current_setting($4) AS d, current_setting($5) AS e';
      const res = await c.query({ name: 'settings', text: q,
        values: ['statement_timeout', 'lock_timeout', 'myapp.client', 'search_path', 'application_name'] });
      const got = res.rows[0];
      const want = { a: `${10 + id}s`, b: '2s', c: `${id}`, d: `public, schema_${id}`, e: `node-${id}` };
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        throw new Error(`client ${id} round ${r}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
      }
      if (r === Math.floor(rounds / 2)) {
        await c.query("SET statement_timeout = '1s'");
        await c.query('RESET statement_timeout'); // back to the startup value
      }
      checked++;
    }
  } finally {
    await c.end();
  }
  return checked;
}

(async () => {
  const [dsn, clients, rounds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
  const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 120000);
  const counts = await Promise.all([...Array(clients).keys()].map((id) => worker(dsn, id, rounds)));
  clearTimeout(timer);
  console.log(`ok ${counts.reduce((a, b) => a + b, 0)}`);
})().catch((e) => { console.error(e.message); process.exit(1); });
