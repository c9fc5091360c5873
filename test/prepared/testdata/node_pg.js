// node-postgres through pgmux: several clients run named queries ({name, text, values})
// concurrently. Usage: node node_pg.js DSN. Prints "ok N" or exits non-zero.
const { Client } = require('pg');

async function worker(dsn, id, rounds) {
  const c = new Client({ connectionString: dsn });
  await c.connect();
  let checked = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      // Same names on every client, different text on some: pgmux keeps them apart.
      const a = await c.query({ name: 'q1', text: 'SELECT $1::int + $2::int AS s', values: [id, r] });
      if (a.rows[0].s !== id + r) throw new Error(`q1: ${a.rows[0].s}`);
      const b = await c.query({ name: 'q2', text: `SELECT $1::text || '-${id % 3}' AS s`, values: [`c${id}`] });
      if (b.rows[0].s !== `c${id}-${id % 3}`) throw new Error(`q2: ${b.rows[0].s}`);
      await c.query('BEGIN');
      const d = await c.query({ name: 'q3', text: 'SELECT $1::int * 2 AS d', values: [r] });
      if (d.rows[0].d !== r * 2) throw new Error(`q3: ${d.rows[0].d}`);
      await c.query('COMMIT');
      checked += 3;
    }
  } finally {
    await c.end();
  }
  return checked;
}

(async () => {
  const dsn = process.argv[2];
  const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 120000);
  const counts = await Promise.all(Array.from({ length: 10 }, (_, i) => worker(dsn, i, 30)));
  clearTimeout(timer);
  console.log('ok', counts.reduce((x, y) => x + y, 0));
})().catch((e) => { console.error(e); process.exit(1); });
