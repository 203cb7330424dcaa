"""One module per client, each run inside its own worker process (``benchmarks.worker``).

A Python client's module offers ``throughput(spec) -> RunResult`` and, for the clients in the
latency runs, ``latency(spec) -> RunResult``. ``java_driver`` instead builds the command line of
Kafka's ProducerPerformance, which reports through a producer interceptor.
"""
