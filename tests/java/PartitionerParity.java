// Kafka's own answers for kengine's partitioner parity test (tests/integration/
// test_partitioners_java_parity.py), computed by the kafka-clients jar rather than a port.
//
// stdin:  one record per line: "<key as hex, or - for the empty key> <partition count>"
// stdout: one line per record: "<Utils.murmur2(key)> <BuiltInPartitioner.partitionForKey(key, n)>"
// partitionForKey is the function Java's default partitioner applies to a keyed record.

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;

import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

public final class PartitionerParity {
    public static void main(String[] args) throws IOException {
        HexFormat hex = HexFormat.of();
        BufferedReader in = new BufferedReader(
            new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        PrintWriter out = new PrintWriter(new BufferedWriter(
            new OutputStreamWriter(System.out, StandardCharsets.US_ASCII)));
        String line;
        while ((line = in.readLine()) != null) {
            int space = line.indexOf(' ');
            String field = line.substring(0, space);
            byte[] key = field.equals("-") ? new byte[0] : hex.parseHex(field);
            int partitions = Integer.parseInt(line.substring(space + 1));
            out.print(Utils.murmur2(key));
            out.print(' ');
            out.println(BuiltInPartitioner.partitionForKey(key, partitions));
        }
        out.flush();
    }
}
