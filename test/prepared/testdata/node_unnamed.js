// node-postgres unnamed statements through pgmux (cache_unnamed_statements): 100 clients
// each insert, update and read back their own rows with parameterised queries without a
// name (node-postgres sends Parse of the unnamed statement, Bind, Describe, Execute,
// Sync), and check that they see exactly their own rows. Usage: node node_unnamed.js DSN.
// Prints "ok N" (N checks) or exits non-zero.
const { Client } = require('pg');

async function worker(dsn, id, rounds) {
  const c = new Client({ connectionString: dsn });
  await c.connect();
  let checked = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      await c.query('INSERT INTO rows_of (owner, n, label) VALUES ($1, $2, $3)', [id, r, `c${id}-${r}`]);
      const a = await c.query('SELECT n, label FROM rows_of WHERE owner = $1 ORDER BY n', [id]);
      if (a.rows.length !== r + 1) throw new Error(`client ${id}: ${a.rows.length} rows, want ${r + 1}`);
      a.rows.forEach((row, i) => {
        if (row.n !== i || row.label !== `c${id}-${i}`) throw new Error(`client ${id}: row ${JSON.stringify(row)}`);
      });
      const b = await c.query('UPDATE rows_of SET label = label || $2 WHERE owner = $1 AND n = $3 RETURNING label', [id, '!', r]);
      if (b.rows.length !== 1 || b.rows[0].label !== `c${id}-${r}!`) throw new Error(`client ${id}: update ${JSON.stringify(b.rows)}`);
      await c.query('UPDATE rows_of SET label = $2 WHERE owner = $1 AND n = $3', [id, `c${id}-${r}`, r]);
      const s = await c.query('SELECT sum(n)::int AS s, count(*)::int AS k FROM rows_of WHERE owner = $1', [id]);
      if (s.rows[0].s !== (r * (r + 1)) / 2 || s.rows[0].k !== r + 1) throw new Error(`client ${id}: sum ${JSON.stringify(s.rows[0])}`);
      checked += 3;
    }
  } finally {
    await c.end();
  }
  return checked;
}

(async () => {
  const dsn = process.argv[2];
  const clients = Number(process.argv[3] || 100);
  const rounds = Number(process.argv[4] || 10);
  const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 150000);
  const counts = await Promise.all(Array.from({ length: clients }, (_, i) => worker(dsn, i, rounds)));
  clearTimeout(timer);
  console.log('ok', counts.reduce((x, y) => x + y, 0));
})().catch((e) => { console.error(e); process.exit(1); });
