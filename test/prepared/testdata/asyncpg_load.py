"""asyncpg through pgmux: a pool of 20 connections, 50 concurrent tasks of prepared
statements (Parse/Describe/Flush, then Bind/Execute/Sync) and transactions.
Usage: asyncpg_load.py DSN. Prints "ok N" (N = checked results) or exits non-zero."""
import asyncio
import sys

import asyncpg


async def task(pool, tid, rounds):
    checked = 0
    for r in range(rounds):
        async with pool.acquire() as conn:
            stmt = await conn.prepare("SELECT $1::int * $2::int AS p, $3::text AS t")
            row = await stmt.fetchrow(tid, r, "x%d" % tid)
            assert row["p"] == tid * r and row["t"] == "x%d" % tid, row
            got = await conn.fetchval("SELECT $1::int + %d" % (r % 7), tid)
            assert got == tid + r % 7, got
            async with conn.transaction():
                await conn.execute("INSERT INTO items (client, seq) VALUES ($1, $2)", tid, r)
                n = await conn.fetchval("SELECT count(*) FROM items WHERE client = $1", tid)
                assert n == r + 1, (n, r)
            checked += 3
    return checked


async def main(dsn):
    pool = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS items (client int, seq int)")
    results = await asyncio.gather(*(task(pool, t, 20) for t in range(50)))
    await pool.close()
    print("ok", sum(results))


asyncio.run(asyncio.wait_for(main(sys.argv[1]), 120))
