"""psycopg 3 and psycopg2 through pgmux with settings: psycopg2 sends SET DATESTYLE TO
'ISO' at connect when the server's DateStyle is not ISO; the app sets TimeZone and a
custom setting, uses set_config, and a rolled-back SET; each connection checks its values
on whichever server it gets.
Usage: python3 psycopg_settings.py DSN CLIENTS ROUNDS. Prints "ok N" or exits non-zero."""
import sys
import threading

import psycopg
import psycopg2

dsn, clients, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
errors, counts = [], []
lock = threading.Lock()


def check(cur, ident, want):
    cur.execute("SELECT current_setting('DateStyle'), current_setting('TimeZone'), "
                "current_setting('myapp.who'), current_setting('work_mem')")
    got = tuple(cur.fetchone())
    if got != want:
        raise AssertionError(f"{ident}: {got}, want {want}")


def v3(i):
    with psycopg.connect(dsn, options="-c DateStyle=Postgres,DMY", autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'Europe/Paris'")
        conn.execute("SELECT set_config('myapp.who', %s, false)", (f"v3-{i}",))
        with conn.transaction():
            conn.execute("SET work_mem = '7MB'")
        try:
            with conn.transaction():
                conn.execute("SET work_mem = '9MB'")
                conn.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero:
            pass
        cur = conn.cursor()
        for r in range(rounds):
            check(cur, f"psycopg {i} round {r}", ("Postgres, DMY", "Europe/Paris", f"v3-{i}", "7MB"))
        conn.execute("RESET ALL")
        cur.execute("SELECT current_setting('DateStyle'), current_setting('work_mem')")
        got = tuple(cur.fetchone())
        if got != ("Postgres, DMY", "4MB"):
            raise AssertionError(f"psycopg {i} after RESET ALL: {got}")
    return rounds


def v2(i):
    conn = psycopg2.connect(dsn, options="-c DateStyle=SQL,DMY")  # psycopg2 then SETs ISO
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SET TimeZone = 'Asia/Tokyo'")
        cur.execute("SET myapp.who = %s", (f"v2-{i}",))
        cur.execute("SET work_mem = '6MB'")
        for r in range(rounds):
            check(cur, f"psycopg2 {i} round {r}", ("ISO, DMY", "Asia/Tokyo", f"v2-{i}", "6MB"))
    finally:
        conn.close()
    return rounds


def run(f, i):
    try:
        n = f(i)
        with lock:
            counts.append(n)
    except Exception as e:  # noqa: BLE001 - reported and fails the run
        with lock:
            errors.append(f"{f.__name__} {i}: {type(e).__name__}: {e}")


threads = [threading.Thread(target=run, args=(f, i)) for i in range(clients) for f in (v3, v2)]
for t in threads:
    t.start()
for t in threads:
    t.join(120)
    if t.is_alive():
        sys.exit("timeout")
if errors:
    sys.exit("\n".join(errors))
print(f"ok {sum(counts)}")
