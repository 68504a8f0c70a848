// A researcher's own job, as a JAR: the DataStream API (not SQL), sliding event-time windows per key,
// counts written as the harness's results contract asks (docs/your-own-job.md). Built by
// tests/test_jobs.py against the cluster's jars and uploaded through Flink's REST API.
//   args: bootstrap events-topic results-topic window-ms slide-ms watermark-delay-ms group-id
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

public class WindowCount {
    private static final Pattern KEY = Pattern.compile("\"key\"\\s*:\\s*\"([^\"]*)\"");
    private static final Pattern TS = Pattern.compile("\"ts\"\\s*:\\s*(\\d+)");

    static String field(Pattern p, String json) {
        Matcher m = p.matcher(json);
        return m.find() ? m.group(1) : "";
    }

    public static class ByKey implements KeySelector<String, String> {
        public String getKey(String event) {
            return field(KEY, event);
        }
    }

    public static class Count extends ProcessWindowFunction<String, String, String, TimeWindow> {
        public void process(String key, Context ctx, Iterable<String> events, Collector<String> out) {
            long n = 0;
            for (String ignored : events) {
                n++;
            }
            out.collect("{\"key\":\"" + key + "\",\"window_start\":" + ctx.window().getStart()
                    + ",\"window_end\":" + ctx.window().getEnd() + ",\"cnt\":" + n + "}");
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], events = args[1], results = args[2];
        long size = Long.parseLong(args[3]), slide = Long.parseLong(args[4]), delay = Long.parseLong(args[5]);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        KafkaSource<String> source = KafkaSource.<String>builder().setBootstrapServers(bootstrap)
                .setTopics(events).setGroupId(args[6]).setStartingOffsets(OffsetsInitializer.earliest())
                .setValueOnlyDeserializer(new SimpleStringSchema()).build();
        KafkaSink<String> sink = KafkaSink.<String>builder().setBootstrapServers(bootstrap)
                .setRecordSerializer(KafkaRecordSerializationSchema.builder().setTopic(results)
                        .setValueSerializationSchema(new SimpleStringSchema()).build())
                .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE).build();
        WatermarkStrategy<String> watermarks = WatermarkStrategy.<String>forBoundedOutOfOrderness(
                Duration.ofMillis(delay)).withTimestampAssigner((event, t) -> Long.parseLong(field(TS, event)));
        env.fromSource(source, watermarks, "events")
                .keyBy(new ByKey())
                .window(SlidingEventTimeWindows.of(Duration.ofMillis(size), Duration.ofMillis(slide)))
                .process(new Count())
                .sinkTo(sink);
        env.execute("jar-window-count");
    }
}
