-- The roles of deploy/userlist.txt, with the very SCRAM verifiers written there (pgmux
-- logs in to the server with the keys it recovers from a client's SCRAM proof, so the
-- server must hold the same verifier). Passwords: app/app, admin/admin, stats/stats.
-- deploy/compose.yaml mounts this into /docker-entrypoint-initdb.d, which the postgres
-- image runs once, after creating POSTGRES_USER (app) and POSTGRES_DB (app).
-- To use other passwords, see deploy/userlist.txt.
ALTER ROLE app PASSWORD 'SCRAM-SHA-256$4096:cGdtdXgtc2FtcGxlLWFwcA==$agth327uXpE+qWewQnxvKuupEMvzrEWhoyoeInANliQ=:FSoptgTwRBe0hdouqBWWCYafeY2BpuYGulRtJgA7ey8=';
-- Console-only users of pgmux: they log in to pgmux, not to PostgreSQL, so NOLOGIN.
CREATE ROLE admin NOLOGIN PASSWORD 'SCRAM-SHA-256$4096:cGdtdXgtc2FtcGxlLWFkbQ==$v7TYEvIshIgcJZBQshiwcIgAphQiu389NlztzTGftRU=:43AkQkfztRm/P0uCNBFAkNkQPtHOrCDUqnmo/SlXTi0=';
CREATE ROLE stats NOLOGIN PASSWORD 'SCRAM-SHA-256$4096:cGdtdXgtc2FtcGxlLXN0YQ==$xMW/MYCbC7VcBw3oaaZpxSzhMfYDscScnsnkRZnlHBA=:plkpAP9QaFbfr4MhQ7C7P2a5utc+nQQegIaoNAcfz9Y=';
