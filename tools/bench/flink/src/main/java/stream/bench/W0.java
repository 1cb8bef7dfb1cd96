package stream.bench;

import java.time.Duration;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.DiscardingSink;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * W0 on Flink: the same records as examples/keyed_sum.hpp (splitmix64 bids on
 * 10,000 auctions, price x 0.908, 1 M records per second of event time), keyed
 * by auction, 1-second tumbling event-time windows summing price and count.
 * Parallelism 1, local MiniCluster. Prints "records seconds".
 */
public final class W0 {
  /** A bid: auction, price, ts (record index). */
  public static final class Bid {
    public long auction;
    public long price;
    public long ts;

    public Bid() {}

    Bid(long auction, long price, long ts) {
      this.auction = auction;
      this.price = price;
      this.ts = ts;
    }
  }

  /** A window's total for one auction. */
  public static final class Total {
    public long auction;
    public long windowEnd;
    public long sum;
    public long count;

    public Total() {}
  }

  static long mix(long x) {
    x += 0x9E3779B97F4A7C15L;
    x = (x ^ (x >>> 30)) * 0xBF58476D1CE4E5B9L;
    x = (x ^ (x >>> 27)) * 0x94D049BB133111EBL;
    return x ^ (x >>> 31);
  }

  public static void main(String[] args) throws Exception {
    final long records = args.length > 0 ? Long.parseLong(args[0]) : 50_000_000L;
    final long keys = 10_000;
    Configuration conf = new Configuration();
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(1, conf);
    env.getConfig().enableObjectReuse();
    DataStream<Bid> bids =
        env.fromSequence(0, records - 1)
            .map(
                (MapFunction<Long, Bid>)
                    i -> {
                      long h = mix(i);
                      long auction = Long.remainderUnsigned(h, keys);
                      long price = 100 + Long.remainderUnsigned(h >>> 40, 10000);
                      return new Bid(auction, (long) (price * 0.908), i);
                    })
            .returns(Bid.class);
    bids.assignTimestampsAndWatermarks(
            WatermarkStrategy.<Bid>forMonotonousTimestamps()
                .withTimestampAssigner((b, t) -> b.ts / 1000))
        .keyBy(b -> b.auction)
        .window(TumblingEventTimeWindows.of(Duration.ofSeconds(1)))
        .aggregate(
            new AggregateFunction<Bid, long[], long[]>() {
              public long[] createAccumulator() {
                return new long[2];
              }

              public long[] add(Bid b, long[] acc) {
                acc[0] += b.price;
                acc[1] += 1;
                return acc;
              }

              public long[] getResult(long[] acc) {
                return acc;
              }

              public long[] merge(long[] a, long[] b) {
                a[0] += b[0];
                a[1] += b[1];
                return a;
              }
            },
            new ProcessWindowFunction<long[], Total, Long, TimeWindow>() {
              public void process(
                  Long key, Context ctx, Iterable<long[]> in, Collector<Total> out) {
                long[] acc = in.iterator().next();
                Total t = new Total();
                t.auction = key;
                t.windowEnd = ctx.window().getEnd();
                t.sum = acc[0];
                t.count = acc[1];
                out.collect(t);
              }
            })
        .addSink(new DiscardingSink<>());
    long start = System.nanoTime();
    env.execute("w0");
    double seconds = (System.nanoTime() - start) / 1e9;
    System.out.println(records + " " + seconds);
  }
}
