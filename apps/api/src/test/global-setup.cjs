// Says once, loudly, what a run without a real PostgreSQL leaves out.
module.exports = async () => {
  if (process.env.TEST_DATABASE_URL || process.env.DATABASE_URL) return;
  console.warn(
    "\n*** TEST_DATABASE_URL is unset: the suites that need a real PostgreSQL (delivery over sockets, failover, channel limits, " +
      "eight-instance migrations...) are SKIPPED, the rest run on the embedded database. " +
      "Set TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres to run them all. ***\n",
  );
};
