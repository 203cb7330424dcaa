"""The markdown report (report.md) of a benchmark run, from its results."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.clients import CLIENTS, KENGINE_REFERENCE
from benchmarks.curves import Curve, curves
from benchmarks.plan import GUARANTEE_SHARE
from benchmarks.summary import ScenarioFigures, Stat, Target

__all__ = ["render"]


def _num(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _stat(s: Stat | None) -> str:
    if s is None:
        return "–"
    if s.min == s.max:
        return _num(s.median)
    return f"{_num(s.median)} [{_num(s.min)}–{_num(s.max)}]"


def _median(s: Stat | None) -> str:
    return "–" if s is None else _num(s.median)


def _ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]],
           right: Sequence[bool] | None = None) -> list[str]:
    right = right or [i > 0 for i in range(len(header))]
    rule = ["---:" if r else "---" for r in right]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |",
            *("| " + " | ".join(row) + " |" for row in rows)]


def render(meta: dict[str, Any], figures: Sequence[ScenarioFigures], targets: Sequence[Target],
           micro: dict[str, Any] | None, failed: Sequence[str], charts: Sequence[str]) -> str:
    out = [f"# kengine benchmark report: {meta['plan']} run", ""]
    out += _preamble(meta, lanes=any(f.scenario.guarantees for f in figures))
    if targets:
        issues = sorted({t.issue for t in targets})
        out += [f"## Targets (issue{'s' if len(issues) > 1 else ''} "
                f"{', '.join(map(str, issues))}), from this run", ""]
        out += _table(["issue", "target", "goal", "measured", "verdict"],
                      [[str(t.issue), t.what, t.goal, t.measured, t.verdict] for t in targets],
                      [False, False, True, True, False])
        out.append("")
    throughput = [f for f in figures if f.scenario.kind == "throughput"]
    issue4 = [f for f in throughput if f.scenario.layout == "single"
              and f.scenario.record_bytes == 100 and f.scenario.compression in ("none", "lz4")]
    if issue4:
        out += _issue4(issue4)
    if throughput:
        out += _cpu_overview(throughput)
        out += ["## End-to-end throughput, scenario by scenario", "",
                ("records/s, MB/s (value bytes) and client CPU µs per record: median of the "
                "rounds [min–max]. The last columns compare kengine with each client: "
                "*speed×* = kengine's records/s ÷ the client's, *CPU×* = the client's CPU per "
                "record ÷ kengine's (above 1: kengine is faster, or cheaper)."), ""]
        for f in throughput:
            out += _scenario_table(f)
        if any(c.idempotence == "not in effect" for f in throughput for c in f.clients.values()):
            out += [("*not in effect*: the client was asked for idempotence but the partition "
                    "leaders report no producer id for the topic (DescribeProducers): its figures "
                    "are those of a non-idempotent producer."), ""]
    partitions = [f for f in figures if f.scenario.kind == "partitions"]
    if partitions:
        out += ["## Many partitions (issue 25)", "",
                ("Idempotent, acks=all, 100-byte records with keys `str(i % 1000)` on topics "
                 "of 100 and 1,000 partitions; the warm-up reaches every partition a key maps "
                 "to before the window opens, so the figures are the steady state, not the "
                 "brokers creating the partitions' logs. Same columns as above."), ""]
        for f in partitions:
            out += _scenario_table(f)
    scaling = curves(figures)
    if scaling:
        out += _curves(scaling)
    eos = [f for f in figures if f.scenario.kind == "eos"]
    if eos:
        out += _eos(eos)
    latency = [f for f in figures if f.scenario.kind == "latency"]
    if latency:
        out += _latency(latency)
    memory = [f for f in figures if f.scenario.kind == "memory"]
    if memory:
        out += _memory(memory)
    if micro:
        out += _micro(micro)
    if charts:
        out += ["## Charts", ""]
        out += [f"![{name}]({name})" for name in charts]
        out.append("")
    out += ["## Failed runs", ""]
    out += [f"- {line}" for line in failed] if failed else [("None: every run's records were "
                                                            "read back and counted.")]
    out.append("")
    return "\n".join(out)


def _preamble(meta: dict[str, Any], *, lanes: bool) -> list[str]:
    """``lanes``: the run compared guarantees, some of which send fewer records."""
    v = meta["versions"]
    s = meta["settings"]
    shares = ", ".join([f"{c.label} {c.record_share:.0%}" for c in CLIENTS.values()
                        if c.record_share < 1]
                       + [f"{g} lanes {share:.0%}" for g, share in GUARANTEE_SHARE.items()
                          if lanes])
    lines = [
        (f"Run {meta['started']} to {meta['finished']} ({meta['duration_s'] / 60:.1f} min) on "
        f"{meta['machine']['cpu']} ({meta['machine']['cpus']} CPUs, shared with other work: "
        f"load average {meta['machine']['load_before']} before, "
        f"{meta['machine']['load_after']} after). Command: `{meta['command']}`."),
        "",
        (f"Versions: kengine {v['kengine']} (commit {meta['commit']}), Kafka {v['kafka']} "
        f"(brokers and the Java producer), confluent-kafka {v['confluent-kafka']} (librdkafka "
        f"{v['librdkafka']}), aiokafka {v['aiokafka']}, kafka-python {v['kafka-python']}, "
        f"Python {v['python']}, {v['java']}."),
        "",
        (f"Every client, in its own process, gets the same settings: batch.size "
        f"{s['batch_bytes']}, linger.ms {s['linger_ms']}, max.in.flight "
        f"{s['max_in_flight']}, buffer.memory {s['buffer_memory_bytes'] // 2**20} MiB (memory "
        "runs: 16 MiB), the codecs' default levels; see benchmarks/README.md for each client's "
        "names for them and what a client lacks. Records: values from a pool of JSON-like "
        "events, keys `str(i % 1000)` (the scaling curves: `str(i % 20000)`), a fresh "
        "topic per run (or topics), counted (end offsets; "
        "transactional runs: read back with read_committed) and sampled by confluent-kafka "
        "before the run counts. CPU is the client process's CPU time (user + system, every "
        "thread) over the produce window (first measured send to last acknowledgement or "
        f"commit), per record. Slower peers send fewer records: {shares}. "
        f"{meta['rounds']} rounds per scenario (memory: {meta['memory_rounds']}), clients "
        "interleaved."),
        "",
    ]
    return lines


def _issue4(figures: Sequence[ScenarioFigures]) -> list[str]:
    figures = sorted(figures, key=lambda f: (f.scenario.acks != "1", f.scenario.compression))
    header = ["client", "records"]
    for f in figures:
        where = f"acks={f.scenario.acks} {f.scenario.compression}"
        header += [f"{where} records/s", f"{where} CPU µs/rec"]
    clients = [c for c in CLIENTS if c != "java" and any(c in f.clients for f in figures)]
    rows = []
    for c in clients:
        counts = {f.clients[c].records for f in figures if c in f.clients}
        row = [CLIENTS[c].label, "/".join(f"{n:,}" for n in sorted(counts))]
        for f in figures:
            cf = f.clients.get(c)
            row += [_median(cf.records_per_s if cf else None),
                    _median(cf.cpu_us_per_record if cf else None)]
        rows.append(row)
    records = figures[0].scenario.records
    out = [
        "## Issue 4: the send path against the peers",
        "",
        (f"One broker, 6 partitions, {records:,} records of 100 bytes (the slow peers fewer: the "
        "records column), keys `str(i % 1000)`; medians of the rounds. Java's "
        "ProducerPerformance is in the scenario tables below."),
        "",
    ]
    out += _table(header, rows)
    out.append("")
    return out


def _cpu_overview(figures: Sequence[ScenarioFigures]) -> list[str]:
    clients = [c for c in CLIENTS if any(c in f.clients for f in figures)]
    rows = [[f.scenario.short] + [_median(f.clients[c].cpu_us_per_record) if c in f.clients
                                  else "–" for c in clients] for f in figures]
    out = ["## Client CPU per record, every scenario (µs, median)", ""]
    out += _table(["scenario"] + [CLIENTS[c].label for c in clients], rows)
    out.append("")
    return out


def _scenario_table(f: ScenarioFigures) -> list[str]:
    header = ["client", "records", "records/s", "MB/s", "CPU µs/record", "peak RSS MiB",
              "idempotence"]
    refs = [k for k in KENGINE_REFERENCE if k in f.clients]
    for k in refs:
        header.append(f"{CLIENTS[k].label}: speed× / CPU×")
    rows = []
    for c, cf in f.clients.items():
        row = [CLIENTS[c].label, f"{cf.records:,}", _stat(cf.records_per_s), _stat(cf.mb_per_s),
               _stat(cf.cpu_us_per_record), _median(cf.rss_peak_mib), cf.idempotence]
        for k in refs:
            row.append("" if c == k else
                       f"{_ratio(f.ratio(k, c, 'throughput'))} / {_ratio(f.ratio(k, c, 'cpu'))}")
        if cf.runs_failed:
            row[0] += f" ({cf.runs_failed} failed)"
        rows.append(row)
    out = [f"### {f.scenario.title}", ""]
    out += _table(header, rows)
    out.append("")
    return out


def _curves(found: Sequence[Curve]) -> list[str]:
    out = ["## Scaling curves (issue 23)", "",
           ("Idempotent, acks=all, no compression, keys `str(i % 20,000)` (enough to reach 98% "
            "of a 5,000-partition topic), every run read back and counted, one broker unless "
            "said. Each curve moves one thing from a base point: one topic of 6 partitions, "
            "one thread, 100-byte records (the topic curve: topics of one partition, from "
            "one). Cells: records/s (MB/s where sizes vary) and client CPU µs per record, "
            "medians of the rounds; *CPU growth* is the client's CPU per record over its "
            "figure at the base point."), ""]
    for curve in found:
        clients = [c for c in CLIENTS if any(c in f.clients for _, f in curve.points)]
        sizes = curve.kind.name in ("size", "brokers")
        header = [curve.kind.x_label]
        for c in clients:
            header += [f"{CLIENTS[c].label} {'MB/s' if sizes else 'records/s'}", "CPU µs/rec"]
            if not sizes:
                header.append("CPU growth")
        rows = []
        for x, f in curve.points:
            row = [f"{x:,}"]
            for c in clients:
                cf = f.clients.get(c)
                if cf is None:
                    row += ["–", "–"] + ([] if sizes else ["–"])
                    continue
                rate = cf.mb_per_s if sizes else cf.records_per_s
                row += [_median(rate), _median(cf.cpu_us_per_record)]
                if not sizes:
                    growth = curve.cpu_growth(c, x)
                    row.append("–" if growth is None else f"{growth:.2f}x")
            rows.append(row)
        out += [f"### {curve.kind.title}", ""]
        out += _table(header, rows)
        out.append("")
    return out


def _eos(figures: Sequence[ScenarioFigures]) -> list[str]:
    out = ["## Issue 5: what idempotence and transactions cost", "",
           ("Each client runs once under each guarantee in every round, interleaved with the "
           "others: *non-idempotent* (acks=all, enable.idempotence=false), *idempotent* "
           "(enable.idempotence=true) and *transactional* (a transactional.id, and a commit "
           "after every transaction's records, as many as the title says; kengine send_many() "
           "passes one transaction's records per call). "
           "The window runs from the first measured send to the last acknowledgement, or to "
           "the return of the last commit_transaction(). Transactional topics are read back "
           "with isolation.level=read_committed: every record sent must be committed, and "
           "the remaining offsets must be exactly one commit marker per transaction and "
           "partition. *Brokers saw* is what the partition leaders report (DescribeProducers): "
           "a producer id (idempotent), also with a coordinator epoch, which only transaction "
           "markers set (transactional). Transactions v2 (KIP-890) bump the producer epoch at "
           "every commit, v1 keeps it: the *epoch* column tells which one ran."), ""]
    for f in figures:
        s = f.scenario
        clients = [c for c in s.clients if any(f.lane(c, g) for g in s.guarantees)]
        base = "non-idempotent"
        header = ["client", "records"]
        for g in s.guarantees:
            header += [f"{g} records/s", f"{g} CPU µs/rec"]
        compared = [g for g in s.guarantees if g != base]
        header += [f"{g} ÷ {base}: records/s, CPU" for g in compared]
        rows = []
        for c in clients:
            counts = {cf.records for g in s.guarantees
                      if (cf := f.lane(c, g)) is not None and cf.runs_ok}
            row = [CLIENTS[c].label, "/".join(f"{n:,}" for n in sorted(counts))]
            for g in s.guarantees:
                cf = f.lane(c, g)
                row += [_median(cf.records_per_s if cf else None),
                        _median(cf.cpu_us_per_record if cf else None)]
            row += [f"{_ratio(f.relative(c, g, base, 'throughput'))}, "
                    f"{_ratio(f.relative(c, g, base, 'cpu'))}" for g in compared]
            rows.append(row)
        out += [f"### {s.title}", "", "Medians of the rounds.", ""]
        out += _table(header, rows)
        out.append("")
        detail = []
        for c in clients:
            for g in s.guarantees:
                cf = f.lane(c, g)
                if cf is None:
                    continue
                label = CLIENTS[c].label + (f" ({cf.runs_failed} failed)" if cf.runs_failed
                                            else "")
                detail.append([label, g, _stat(cf.records_per_s), _stat(cf.cpu_us_per_record),
                               _median(cf.rss_peak_mib), cf.guarantee_seen,
                               "–" if cf.max_producer_epoch < 0 else str(cf.max_producer_epoch),
                               "–" if cf.control_records is None else f"{cf.control_records:,}"])
        out += ["Every lane, median [min–max], and what the brokers saw:", ""]
        out += _table(["client", "guarantee", "records/s", "CPU µs/record", "peak RSS MiB",
                       "brokers saw", "epoch", "markers per run"], detail,
                      [False, False, True, True, True, False, True, True])
        out.append("")
    return out


def _latency(figures: Sequence[ScenarioFigures]) -> list[str]:
    out = ["## Latency at a fixed rate", "",
           ("From each send() call to its delivery callback (Java: ProducerPerformance's own "
           "figures, whole milliseconds), after one second of warm-up; µs, median of the rounds "
           "[min–max]. confluent-kafka serves its callbacks in poll(), called between sends."), ""]
    for f in figures:
        rows = []
        for c, cf in f.clients.items():
            lat = cf.latency_us
            rows.append([CLIENTS[c].label, *(_stat(lat.get(p)) for p in ("p50", "p99", "p99.9",
                                                                           "max"))])
        out += [f"### {f.scenario.title}", ""]
        out += _table(["client", "p50 µs", "p99 µs", "p99.9 µs", "max µs"], rows)
        out.append("")
    return out


def _memory(figures: Sequence[ScenarioFigures]) -> list[str]:
    out = ["## Memory: peak RSS while producing", "",
           ("Peak resident set size of the client's process (VmHWM), and its RSS when the "
           "measured window opened (after imports, connection and warm-up). aiokafka and "
           "kafka-python have no buffer.memory: aiokafka bounds its queue at one batch per "
           "partition, kafka-python 3 does not bound it. The JVM's heap is capped at 256 MiB "
           "(kafka-run-class.sh's default)."), ""]
    for f in figures:
        rows = [[CLIENTS[c].label, f"{cf.records:,}", _stat(cf.rss_peak_mib),
                 _median(cf.rss_start_mib), _stat(cf.records_per_s),
                 _stat(cf.cpu_us_per_record)] for c, cf in f.clients.items()]
        out += [f"### {f.scenario.title}", ""]
        out += _table(["client", "records", "peak RSS MiB", "RSS at start MiB", "records/s",
                       "CPU µs/record"], rows)
        out.append("")
    return out


def _rate(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1e9:.2f} GB/s"
    return f"{value / 1e6:.2f} M{unit}/s"


def _micro(micro: dict[str, Any]) -> list[str]:
    out = ["## Micro-benchmarks (pytest-benchmark, medians)", "",
           ("Same process, same run; `×` columns divide by the baseline row. Raw data: "
           f"`{micro.get('json', 'micro.json')}`."), ""]
    for name, table in micro["tables"].items():
        rows_by_impl: dict[str, dict[str, float]] = table["rows"]
        sizes = list(dict.fromkeys(s for r in rows_by_impl.values() for s in r))
        base = table.get("baseline")
        ref = rows_by_impl.get(base, {}) if base else {}
        compared = [s for s in sizes if s in ref]
        header = ["implementation", *sizes, *(f"{s} ×" for s in compared)]
        rows = []
        for impl, by_size in rows_by_impl.items():
            row = [impl + (" (baseline)" if impl == base else "")]
            row += [_rate(by_size[s], table["unit"]) if s in by_size else "" for s in sizes]
            row += [f"{by_size[s] / ref[s]:.2f}×" if s in by_size else "" for s in compared]
            rows.append(row)
        out += [f"### {name}", ""]
        out += _table(header, rows)
        out.append("")
        extra: dict[str, dict[str, dict[str, float]]] = table.get("extra", {})
        ratios = [[impl, size, f"{info['compression_ratio']:.3f}"]
                  for impl, by_size in extra.items() for size, info in by_size.items()
                  if "compression_ratio" in info]
        if ratios:
            out += ["Compressed size ÷ uncompressed size of each output:", ""]
            out += _table(["implementation", "codec", "ratio"], ratios, [False, False, True])
            out.append("")
    if micro.get("timings"):
        out += ["### Produce request encoding and response decoding (µs per call)", ""]
        rows = [[group, name.removeprefix("test_"), f"{median * 1e6:.2f}"]
                for group, by_name in micro["timings"].items()
                for name, median in sorted(by_name.items(), key=lambda kv: kv[1])]
        out += _table(["group", "benchmark", "µs"], rows, [False, False, True])
        out.append("")
    return out
