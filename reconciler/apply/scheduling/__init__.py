"""The executor's speed-ups: which steps overlap, and which reads it skips or combines.

An apply that did one step after another, with a read before and after each command,
would be slower than running the commands by hand. This machinery was
added to win the convergence benchmark (``benchmarks/bench_convergence.py``: apply on 5
fresh nodes against the manual procedure, at 0, 50 and 200 ms MMP latency). What each
part buys:

* **Steps start on their dependencies, not in waves** (``order.step_predecessors``,
  run by ``schedule.Schedule``). Each node's preparation (uploads, `localnode`, `certs`,
  `clear error` while not clustered) overlaps the other nodes', the master's
  `initialize` starts once the master is prepared, each join once the cluster steps
  before it and its own node are. With joins one at a time (the default) `initialize`
  and the joins take as long as by hand; the overlapped preparation is where apply wins
  (about 0.8 of the manual procedure at 200 ms; about even at 0 ms, where there is
  little to overlap).
* **Preparation gives way to the critical path** (``order.deferred_preparation``):
  preparation the next two cluster steps do not need waits until the next one has
  started, so the master's and first joining node's preparation and `initialize` do
  not share the process and cores with the other nodes' uploads. The first joining node
  is not deferred: at 200 ms its preparation then held the first join back ~0.6 s.
* **Joins together** (``policy.join_concurrency``; the schedule's semaphore): joins
  that follow one another do not wait for each other (about 0.6 of the manual procedure
  at 200 ms with 4).
* **Readings re-used** (``readings.ReadingCache``): a step's precondition check uses
  the node's last reading instead of a status round trip when it was taken after the
  node's last command completed and nothing this run sent since could have changed it
  (no MMP command to that node, no cluster-step command to any node; an upload only
  invalidates its own file's checksum). Such readings are the previous step's outcome
  check, the run's own observation when ``observed_fresh`` (it spares the master one
  round trip before its first upload), and the **look-ahead**
  (``schedule.Schedule.lookahead_nodes``): each poll round of an asynchronous step also
  reads the nodes the steps waiting only for it will check (the next join's node and
  its master), so the next join starts without one more round trip. Another node's
  reading counts only while younger than ``readings.OTHER_NODE_READING_SECONDS``.
  Checksums are read only for the files a step names, and an upload's outcome check
  reads just its file.
* **Polls fast, then backing off** (``backoff.PollDelay``): 0.05 s apart for the
  first 1.5 s, then x1.25 up to ``--poll-interval``: on the lab a join takes about a
  second and a long poll would add most of a poll to every command on the critical
  path; a command that runs for minutes on a real CMS is not polled 20 times a second.

None of it weakens the compare-and-set: every step still checks its facts right before
it runs, on a reading that is a re-read by the rules above (docs/live.md, "Executor").
``order`` is pure; ``schedule`` runs the steps; ``readings`` is the cache;
``backoff`` the poll delays.
"""
