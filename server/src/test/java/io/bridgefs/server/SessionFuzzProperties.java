package io.bridgefs.server;

import static org.junit.jupiter.api.Assertions.*;

import com.codahale.metrics.MetricRegistry;
import io.bridgefs.protocol.nbd.NbdHandshakeDecoder;
import io.bridgefs.protocol.p9.P9FrameDecoder;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.metrics.IoMetrics;
import io.bridgefs.server.nbd.NbdExport;
import io.bridgefs.server.nbd.NbdExports;
import io.bridgefs.server.nbd.NbdHandshakeHandler;
import io.bridgefs.server.nbd.NbdServerContext;
import io.bridgefs.server.net.InternalErrors;
import io.bridgefs.server.net.MemoryBudget;
import io.bridgefs.server.p9.P9Export;
import io.bridgefs.server.p9.P9ServerContext;
import io.bridgefs.server.p9.P9Session;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.ResourceLeakDetector;
import io.netty.util.ResourceLeakDetectorFactory;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

/**
 * Fuzzing of both protocols' decoders and session state machines, seeded with a corpus of real client
 * traffic (qemu-img, qemu-io, nbdinfo, nbdcopy; diodls, diodcat and a Linux guest's 9P mount; captured by
 * {@code client-tests/fuzz/capture-corpus.sh} into {@code src/test/resources/corpus}). Each try takes a
 * corpus stream, applies a few mutations (bit flips, interesting integers in length fields, inserted,
 * deleted, repeated or truncated runs, a splice with another stream) and feeds it in random fragments to
 * the real pipeline: handshake or frame decoder, then the session, over real files and the real page
 * cache. Whatever comes in must end in protocol errors or a clean close: no exception out of the
 * pipeline, no server fault ({@link InternalErrors}), every buffer released (Netty's paranoid leak
 * detector, with leaks recorded and failing the run), nothing left held when the connection ends.
 *
 * <p>Why jqwik and not Jazzer: the same runner, seeds and shrinking as every other property here, no
 * instrumentation agent in the build, and the mutations start from real traffic, which gets deep into
 * both state machines at once; the edge-case integers go where length fields are. CI runs 300 tries a
 * protocol; a long run: {@code mvn -pl server test -Dtest=SessionFuzzProperties -Dfuzz.rounds=1000}
 * (each try then feeds that many mutated streams).
 */
class SessionFuzzProperties {
    static final List<String> LEAKS = new CopyOnWriteArrayList<>();
    static final int ROUNDS = Integer.getInteger("fuzz.rounds", 1);
    static PageCache cache;
    static CachedFile disk;
    static Path work;
    /** Requests the sessions executed, over all tries: the fuzzing must get past the handshakes. */
    static final java.util.concurrent.atomic.LongAdder NBD_OPS = new java.util.concurrent.atomic.LongAdder();
    static final java.util.concurrent.atomic.LongAdder P9_REQUESTS = new java.util.concurrent.atomic.LongAdder();

    static final class DirectExecutor extends AbstractExecutorService {
        public void execute(Runnable r) { r.run(); }
        public void shutdown() {}
        public List<Runnable> shutdownNow() { return List.of(); }
        public boolean isShutdown() { return false; }
        public boolean isTerminated() { return false; }
        public boolean awaitTermination(long t, TimeUnit u) { return true; }
    }

    @BeforeContainer
    static void setUp() throws IOException {
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.PARANOID);
        ResourceLeakDetectorFactory.setResourceLeakDetectorFactory(new ResourceLeakDetectorFactory() {
            @Override
            public <T> ResourceLeakDetector<T> newResourceLeakDetector(Class<T> resource, int samplingInterval, long maxActive) {
                return new ResourceLeakDetector<>(resource, 1) {
                    @Override
                    protected void reportTracedLeak(String type, String records) { LEAKS.add(type + records); }
                    @Override
                    protected void reportUntracedLeak(String type) { LEAKS.add(type); }
                };
            }
        });
        work = Files.createTempDirectory("bridgefs-fuzz");
        Path img = work.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(4 << 20);
        }
        cache = new PageCache(8 << 20, CacheMode.WRITEBACK);
        disk = cache.open(img, false);
    }

    @AfterContainer
    static void tearDown() throws IOException {
        System.out.printf("fuzzing: %d NBD requests and %d 9P requests executed past the handshakes%n", NBD_OPS.sum(), P9_REQUESTS.sum());
        assertTrue(NBD_OPS.sum() > 300, "mutated NBD traffic hardly reached the transmission phase: " + NBD_OPS.sum());
        assertTrue(P9_REQUESTS.sum() > 1000, "mutated 9P traffic hardly reached the operations: " + P9_REQUESTS.sum());
        checkLeaks();
        disk.close();
        cache.close();
        try (Stream<Path> s = Files.walk(work)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    static void checkLeaks() {
        for (int i = 0; i < 3; i++) {
            System.gc();
            // leaks are reported when the detector next tracks a buffer
            for (int k = 0; k < 64; k++) Unpooled.directBuffer(16).release();
        }
        assertEquals(List.of(), LEAKS, "buffers never released");
    }

    static List<byte[]> corpus(String protocol) {
        try {
            Path dir = Path.of(SessionFuzzProperties.class.getResource("/corpus/" + protocol).toURI());
            List<byte[]> all = new ArrayList<>();
            try (Stream<Path> s = Files.list(dir)) {
                for (Path p : s.sorted().toList()) all.add(Files.readAllBytes(p));
            }
            assertFalse(all.isEmpty(), "no corpus for " + protocol);
            return all;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static final List<byte[]> NBD = corpus("nbd");
    static final List<byte[]> P9 = corpus("9p");
    static final int[] INTERESTING = {0, 1, -1, 7, 8, 28, 4096, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
            0xFFFFFFF0, 1 << 20, 32 << 20, (32 << 20) + 1};

    /** A mutated stream: corpus entry, then a few mutations, from one seed (shrinks to fewer mutations). */
    static byte[] mutate(List<byte[]> corpus, long seed, int mutations) {
        Random r = new Random(seed);
        byte[] base = corpus.get(r.nextInt(corpus.size()));
        byte[] b = base.clone();
        for (int m = 0; m < mutations && b.length > 0; m++) {
            int at = r.nextInt(b.length);
            switch (r.nextInt(8)) {
                case 0 -> b[at] ^= (byte) (1 << r.nextInt(8));
                case 1 -> b[at] = (byte) INTERESTING[r.nextInt(INTERESTING.length)];
                case 2 -> {                                        // an interesting 32-bit value, either byte order
                    int v = INTERESTING[r.nextInt(INTERESTING.length)];
                    boolean le = r.nextBoolean();
                    for (int i = 0; i < 4 && at + i < b.length; i++) b[at + i] = (byte) (le ? v >>> (8 * i) : v >>> (24 - 8 * i));
                }
                case 3 -> {                                        // insert random bytes
                    byte[] ins = new byte[1 + r.nextInt(64)];
                    r.nextBytes(ins);
                    b = concat(slice(b, 0, at), ins, slice(b, at, b.length));
                }
                case 4 -> b = concat(slice(b, 0, at), slice(b, Math.min(b.length, at + 1 + r.nextInt(256)), b.length));
                case 5 -> {                                        // repeat a run
                    int end = Math.min(b.length, at + 1 + r.nextInt(512));
                    b = concat(slice(b, 0, end), slice(b, at, end), slice(b, end, b.length));
                }
                case 6 -> b = slice(b, 0, at);                     // truncate
                default -> {                                       // splice another stream's tail
                    byte[] o = corpus.get(r.nextInt(corpus.size()));
                    b = concat(slice(b, 0, at), slice(o, r.nextInt(o.length), o.length));
                }
            }
        }
        return b;
    }

    static byte[] slice(byte[] b, int from, int to) { return java.util.Arrays.copyOfRange(b, from, Math.max(from, to)); }

    static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) n += p.length;
        byte[] out = new byte[n];
        int at = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    /** Feeds a stream in random fragments, running the event loop's tasks and draining replies as it goes. */
    static void feed(EmbeddedChannel ch, byte[] stream, Random r) {
        for (int at = 0; at < stream.length && ch.isOpen(); ) {
            int n = Math.min(stream.length - at, 1 + r.nextInt(r.nextBoolean() ? 16 : 70_000));
            ch.writeInbound(Unpooled.copiedBuffer(stream, at, n));
            at += n;
            drain(ch);
        }
        drain(ch);
    }

    static void drain(EmbeddedChannel ch) {
        for (int i = 0; i < 3; i++) {
            ch.runPendingTasks();
            Object o;
            while ((o = ch.readOutbound()) != null) ReferenceCountUtil.release(o);
        }
        for (Object o; (o = ch.readInbound()) != null; ) ReferenceCountUtil.release(o);
    }

    @Provide
    Arbitrary<Integer> mutations() {
        return Arbitraries.integers().between(0, 8);
    }

    @Property(tries = 300)
    void nbdSessionsSurviveMutatedRealTraffic(@ForAll long seed, @ForAll("mutations") int mutations) {
        long faults = InternalErrors.count();
        for (int round = 0; round < ROUNDS; round++) {
            byte[] stream = mutate(NBD, seed + round, mutations);
            MemoryBudget budget = new MemoryBudget(64 << 20);
            IoMetrics m = new IoMetrics(new MetricRegistry(), "nbd", "disk");
            var export = new NbdExport("disk", "fuzz", work.resolve("disk.img"), false, disk, m);
            var ctx = new NbdServerContext(new NbdExports(List.of(export)), new DirectExecutor(), budget);
            EmbeddedChannel ch = new EmbeddedChannel();
            ch.pipeline().addLast(NbdHandshakeHandler.DECODER, new NbdHandshakeDecoder())
                    .addLast("nbd-handshake", new NbdHandshakeHandler(ctx));
            ch.pipeline().fireChannelActive();
            feed(ch, stream, new Random(seed ^ round));
            ch.close();
            drain(ch);
            ch.finishAndReleaseAll();
            assertEquals(0, budget.used(), "request memory still held after the connection ended");
            NBD_OPS.add(m.read.getCount() + m.write.getCount() + m.flush.getCount() + m.trim.getCount() + m.writeZeroes.getCount()
                    + m.blockStatus.getCount() + m.errors.getCount());
        }
        assertEquals(faults, InternalErrors.count(), "a server fault (see the log) on mutated NBD traffic, seed " + seed);
        cache.quiesce();                         // background read-ahead holds pins while it runs
        assertEquals(0, cache.snapshot().pinnedPages(), "pages left pinned");
        if (seed % 16 == 0) checkLeaks();
    }

    @Property(tries = 300)
    void p9SessionsSurviveMutatedRealTraffic(@ForAll long seed, @ForAll("mutations") int mutations) throws IOException {
        long faults = InternalErrors.count();
        Path root = Files.createTempDirectory(work, "share");
        Files.createDirectories(root.resolve("dir/sub"));
        Files.write(root.resolve("file"), new byte[300_000]);
        Files.writeString(root.resolve("dir/sub/small"), "hello\n");
        Files.createSymbolicLink(root.resolve("link"), Path.of("file"));
        P9Export e = new P9Export("share", root.toRealPath(), false, -1, -1, false, new IoMetrics(new MetricRegistry(), "9p", "share"));
        MemoryBudget budget = new MemoryBudget(64 << 20);
        var requests = new io.bridgefs.server.metrics.RequestCounts(new MetricRegistry(), "9p");
        P9ServerContext ctx = new P9ServerContext(List.of(e), new DirectExecutor(), cache, 1 << 20, 4, requests, budget);
        for (int round = 0; round < ROUNDS; round++) {
            byte[] stream = mutate(P9, seed + round, mutations);
            P9FrameDecoder decoder = new P9FrameDecoder(8192);
            EmbeddedChannel ch = new EmbeddedChannel();
            ch.pipeline().addLast("9p-decoder", decoder).addLast("9p-session", new P9Session(ctx, decoder));
            feed(ch, stream, new Random(seed ^ round));
            ch.close();
            drain(ch);
            ch.finishAndReleaseAll();
            assertEquals(0, ctx.fids(), "fids left after the connection ended");
            assertEquals(0, budget.used(), "request memory still held after the connection ended");
        }
        ctx.releaseAll();
        requests.snapshot().forEach((type, n) -> { if (!type.equals("version")) P9_REQUESTS.add(n); });
        assertEquals(faults, InternalErrors.count(), "a server fault (see the log) on mutated 9P traffic, seed " + seed);
        cache.quiesce();                         // background read-ahead holds pins while it runs
        assertEquals(0, cache.snapshot().pinnedPages(), "pages left pinned");
        if (seed % 16 == 0) checkLeaks();
    }
}
