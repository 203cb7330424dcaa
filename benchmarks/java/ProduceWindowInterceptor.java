package dev.kengine.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.producer.ProducerInterceptor;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;

/**
 * Measures Kafka's ProducerPerformance over its produce window, as the Python clients are
 * measured: from the send() of the first record after the warm-up to the acknowledgement of the
 * last record, the wall time and the CPU time of the whole JVM (every thread: the sending
 * thread, the producer's I/O thread, JIT and GC). Loaded through {@code interceptor.classes};
 * it costs one counter increment per send and per acknowledgement.
 *
 * <p>Settings (producer properties the producer itself ignores):
 * {@code kengine.bench.warmup.records}, {@code kengine.bench.records} (measured records after
 * the warm-up) and {@code kengine.bench.result.file}, where close() writes one JSON object.
 */
public final class ProduceWindowInterceptor implements ProducerInterceptor<byte[], byte[]> {
    private static final com.sun.management.OperatingSystemMXBean OS =
        (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    private long warmupRecords;
    private long totalRecords;
    private Path resultFile;

    // ProducerPerformance sends from one thread: sent is only touched by it
    private long sent;
    private final AtomicLong acked = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    // written once each, by the sending thread (start) and the I/O thread (end)
    private volatile long startWallNs;
    private volatile long startCpuNs = -1;
    private volatile long startRssBytes;
    private volatile long endWallNs;
    private volatile long endCpuNs = -1;

    @Override
    public void configure(Map<String, ?> configs) {
        warmupRecords = Long.parseLong(required(configs, "kengine.bench.warmup.records"));
        totalRecords = warmupRecords + Long.parseLong(required(configs, "kengine.bench.records"));
        resultFile = Path.of(required(configs, "kengine.bench.result.file"));
    }

    private static String required(Map<String, ?> configs, String name) {
        Object value = configs.get(name);
        if (value == null) {
            throw new IllegalArgumentException(name + " is not set: ProduceWindowInterceptor "
                + "needs the kengine.bench.* producer properties the benchmark runner passes");
        }
        return value.toString();
    }

    @Override
    public ProducerRecord<byte[], byte[]> onSend(ProducerRecord<byte[], byte[]> record) {
        if (sent++ == warmupRecords) {
            startRssBytes = statusBytes("VmRSS");
            startCpuNs = OS.getProcessCpuTime();
            startWallNs = System.nanoTime();
        }
        return record;
    }

    @Override
    public void onAcknowledgement(RecordMetadata metadata, Exception exception) {
        if (exception != null) {
            failed.incrementAndGet();
        }
        if (acked.incrementAndGet() == totalRecords) {
            endWallNs = System.nanoTime();
            endCpuNs = OS.getProcessCpuTime();
        }
    }

    @Override
    public void close() {
        String json;
        if (startCpuNs < 0 || endCpuNs < 0) {
            json = String.format(Locale.ROOT, "{\"error\": \"window incomplete: %d sent, %d acknowledged of %d\"}",
                sent, acked.get(), totalRecords);
        } else {
            long cpuNs = endCpuNs - startCpuNs;
            json = String.format(Locale.ROOT,
                "{\"records\": %d, \"window_s\": %.9f, \"cpu_user_s\": %.9f, \"cpu_system_s\": 0,"
                    + " \"rss_start_bytes\": %d, \"rss_peak_bytes\": %d, \"delivery_errors\": %d,"
                    + " \"notes\": [\"JVM CPU time is not split into"
                    + " user and system: all of it is under cpu_user_s\"]}",
                totalRecords - warmupRecords, (endWallNs - startWallNs) / 1e9, cpuNs / 1e9,
                startRssBytes, statusBytes("VmHWM"), failed.get());
        }
        try {
            Files.writeString(resultFile, json, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write " + resultFile, e);
        }
    }

    /** A memory figure of this process from /proc/self/status, in bytes (-1 if unreadable). */
    private static long statusBytes(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.split("\\s+")[1]) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
