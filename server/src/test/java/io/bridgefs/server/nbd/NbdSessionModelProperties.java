package io.bridgefs.server.nbd;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import com.codahale.metrics.MetricRegistry;
import io.bridgefs.protocol.nbd.NbdHandshake;
import io.bridgefs.protocol.nbd.NbdHandshakeDecoder;
import io.bridgefs.protocol.nbd.NbdOptionData;
import io.bridgefs.protocol.nbd.NbdOptionReply;
import io.bridgefs.protocol.nbd.NbdReplyDecoder;
import io.bridgefs.protocol.nbd.NbdRequest;
import io.bridgefs.server.cache.BackingStore;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.FileKey;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.metrics.IoMetrics;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.TimeUnit;
import net.jqwik.api.*;
import net.jqwik.api.state.Action;
import net.jqwik.api.state.ActionChain;
import net.jqwik.api.state.Transformer;

/**
 * Model-based test of an NBD session: the real handshake and transmission handlers in an
 * EmbeddedChannel over a small cache and an in-memory image, driven by random valid and invalid
 * requests, each checked against a byte[] model of the export and the spec's error codes.
 */
class NbdSessionModelProperties {
    static final int SIZE = 256 * 1024;

    /** Runs tasks at once, on the caller: the session's executor hand-off becomes synchronous. */
    static class DirectExecutor extends AbstractExecutorService {
        public void execute(Runnable r) { r.run(); }
        public void shutdown() {}
        public List<Runnable> shutdownNow() { return List.of(); }
        public boolean isShutdown() { return false; }
        public boolean isTerminated() { return false; }
        public boolean awaitTermination(long t, TimeUnit u) { return true; }
    }

    /** An in-memory image (the cache's test store lives in another package). */
    static final class Mem implements BackingStore {
        final byte[] data = new byte[SIZE];
        public long size() { return SIZE; }
        public synchronized int read(ByteBuffer dst, long pos) {
            int n = (int) Math.min(dst.remaining(), SIZE - pos);
            dst.put(data, (int) pos, n);
            return n;
        }
        public synchronized void write(ByteBuffer src, long pos) { src.get(data, (int) pos, src.remaining()); }
        public void sync() {}
        public void truncate(long s) {}
        public synchronized boolean punchHole(long off, long len) {
            Arrays.fill(data, (int) off, (int) Math.min(SIZE, off + len), (byte) 0);
            return true;
        }
        public Extent extentAt(long off, long limit) { return new Extent(limit - off, false); }
        public boolean directIo() { return false; }
        public boolean sparse() { return true; }
        public void close() {}
    }

    static final class World {
        final byte[] model = new byte[SIZE];
        final EmbeddedChannel ch;
        final boolean structured;
        long cookie = 1;

        World(boolean structured) {
            this(structured, new DirectExecutor());
        }

        World(boolean structured, AbstractExecutorService executor) {
            this(structured, executor, new Mem(), 64);
        }

        final PageCache cache;
        final NbdExport export;

        /** A session over {@code store} (SIZE bytes) with a cache of {@code pages}. */
        World(boolean structured, AbstractExecutorService executor, BackingStore store, int pages) {
            this.structured = structured;
            try {
                cache = new PageCache(pages * 4096L, CacheMode.WRITEBACK);
                var file = cache.open(new FileKey(5, 5), store, false);
                export = new NbdExport("m", null, Path.of("m"), false, file, new IoMetrics(new MetricRegistry(), "nbd", "m"));
                var ctx = new NbdServerContext(new NbdExports(List.of(export)), executor);
                ch = new EmbeddedChannel();
                ch.pipeline().addLast(NbdHandshakeHandler.DECODER, new NbdHandshakeDecoder())
                        .addLast("nbd-handshake", new NbdHandshakeHandler(ctx));
                ch.pipeline().fireChannelActive();
                ByteBuf greeting = ch.readOutbound();
                assertEquals(NBDMAGIC, greeting.readLong());
                greeting.release();
                ByteBuf b = Unpooled.buffer();
                b.writeInt(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                if (structured) NbdHandshake.encodeOption(b, NBD_OPT_STRUCTURED_REPLY, new byte[0]);
                NbdHandshake.encodeOption(b, NBD_OPT_GO, new NbdOptionData.InfoRequest("m", List.of()).encode());
                ch.writeInbound(b);
                ByteBuf out = drain();
                NbdOptionReply r;
                int acks = 0;
                while ((r = NbdOptionReply.decode(out)) != null) if (r.type() == NBD_REP_ACK) acks++;
                out.release();
                assertEquals(structured ? 2 : 1, acks);
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        }

        ByteBuf drain() {
            ch.runPendingTasks();
            ByteBuf all = Unpooled.buffer();
            Object o;
            while ((o = ch.readOutbound()) != null) {
                ByteBuf b = (ByteBuf) o;
                all.writeBytes(b);
                b.release();
            }
            return all;
        }

        /** Sends one request and returns its reply: error code and, for reads, the data. */
        /** Sends a request, in pieces cut at the given byte positions (as TCP segments may), and returns its reply. */
        NbdReplyDecoder.Reply send(int type, int flags, long offset, long length, byte[] payload, int... cuts) {
            long c = cookie++;
            ByteBuf b = Unpooled.buffer();
            NbdRequest.encode(b, type, flags, c, offset, length, payload == null ? null : Unpooled.wrappedBuffer(payload));
            int from = 0;
            for (int cut : cuts) {
                ch.writeInbound(b.retainedSlice(from, cut - from));
                from = cut;
            }
            ch.writeInbound(b.retainedSlice(from, b.writerIndex() - from));
            b.release();
            ByteBuf out = drain();
            NbdReplyDecoder.Reply r = NbdReplyDecoder.decode(out, x -> type == NBD_CMD_READ ? (int) length : 0);
            assertNotNull(r, "a reply for every request");
            assertEquals(c, r.cookie());
            if (r.structured() && !r.done()) fail("one chunk per reply expected here");
            assertEquals(0, out.readableBytes(), "nothing but the reply");
            out.release();
            return r;
        }

        @Override
        public String toString() { return structured ? "structured" : "simple"; }
    }

    @Property(tries = 40)
    void structuredSessionMatchesModel(@ForAll("structured") ActionChain<World> chain) {
        chain.run();
    }

    @Property(tries = 40)
    void simpleSessionMatchesModel(@ForAll("simple") ActionChain<World> chain) {
        chain.run();
    }

    @Provide
    Arbitrary<ActionChain<World>> structured() { return chains(true); }

    @Provide
    Arbitrary<ActionChain<World>> simple() { return chains(false); }

    static Arbitrary<ActionChain<World>> chains(boolean structured) {
        return ActionChain.startWith(() -> new World(structured))
                .withAction(4, new Write())
                .withAction(4, new Read())
                .withAction(1, new Trim())
                .withAction(1, new Zero())
                .withAction(1, new Flush())
                .withAction(2, new OutOfRange())
                .withMaxTransformations(30);
    }

    static Arbitrary<Long> offsets() { return Arbitraries.longs().between(0, SIZE - 1); }
    static Arbitrary<Integer> lengths() { return Arbitraries.integers().between(1, 20000); }

    static class Write implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            // cut: where the request arrives in two pieces (0: whole), as TCP segments split it
            return Combinators.combine(offsets(), lengths(), Arbitraries.integers(), Arbitraries.of(0, NBD_CMD_FLAG_FUA),
                    Arbitraries.integers().between(0, 9000)).as((off, len, seed, fl, cut) -> {
                int n = (int) Math.min(len, SIZE - off);
                int at = 28 + Math.min(cut, n);          // after the 28-byte header, inside the payload
                return Transformer.mutate("write @" + off + " +" + n + (cut > 0 && at < 28 + n ? " cut at " + at : ""), w -> {
                    byte[] d = new byte[n];
                    new java.util.Random(seed).nextBytes(d);
                    var r = cut > 0 && at < 28 + n ? w.send(NBD_CMD_WRITE, fl, off, n, d, at) : w.send(NBD_CMD_WRITE, fl, off, n, d);
                    assertEquals(0, r.error());
                    System.arraycopy(d, 0, w.model, (int) (long) off, n);
                });
            });
        }
    }

    static class Read implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(offsets(), lengths()).as((off, len) -> {
                int n = (int) Math.min(len, SIZE - off);
                return Transformer.mutate("read @" + off + " +" + n, w -> {
                    NbdReplyDecoder.Reply r = w.send(NBD_CMD_READ, 0, off, n, null);
                    assertEquals(0, r.error());
                    ByteBuf p = r.payload();
                    if (w.structured) {
                        assertEquals(NBD_REPLY_TYPE_OFFSET_DATA, r.type());
                        assertEquals((long) off, p.readLong());
                    }
                    byte[] got = new byte[p.readableBytes()];
                    p.readBytes(got);
                    p.release();
                    assertArrayEquals(Arrays.copyOfRange(w.model, (int) (long) off, (int) (off + n)), got);
                });
            });
        }
    }

    static class Trim implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(offsets(), lengths()).as((off, len) -> {
                int n = (int) Math.min(len, SIZE - off);
                return Transformer.mutate("trim @" + off + " +" + n, w -> {
                    assertEquals(0, w.send(NBD_CMD_TRIM, 0, off, n, null).error());
                    Arrays.fill(w.model, (int) (long) off, (int) (off + n), (byte) 0);   // this server's trim reads back zeros
                });
            });
        }
    }

    static class Zero implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(offsets(), lengths(), Arbitraries.of(0, NBD_CMD_FLAG_NO_HOLE)).as((off, len, fl) -> {
                int n = (int) Math.min(len, SIZE - off);
                return Transformer.mutate("write_zeroes @" + off + " +" + n + " flags " + fl, w -> {
                    assertEquals(0, w.send(NBD_CMD_WRITE_ZEROES, fl, off, n, null).error());
                    Arrays.fill(w.model, (int) (long) off, (int) (off + n), (byte) 0);
                });
            });
        }
    }

    static class Flush implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Arbitraries.just(Transformer.mutate("flush", w -> assertEquals(0, w.send(NBD_CMD_FLUSH, 0, 0, 0, null).error())));
        }
    }

    static class OutOfRange implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            Arbitrary<Long> bad = Arbitraries.oneOf(Arbitraries.longs().between(SIZE - 100, SIZE + 100000),
                    Arbitraries.of(Long.MIN_VALUE, -1L, 1L << 32));
            return Combinators.combine(Arbitraries.of(NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES), bad)
                    .as((type, off) -> Transformer.mutate(commandName(type) + " out of range @" + off, w -> {
                        long len = 4096;
                        boolean writes = type != NBD_CMD_READ;
                        var r = w.send(type, 0, off, len, type == NBD_CMD_WRITE ? new byte[(int) len] : null);
                        boolean inRange = off >= 0 && off + len <= SIZE;
                        if (inRange) {
                            assertEquals(0, r.error());
                            if (type != NBD_CMD_READ) Arrays.fill(w.model, (int) (long) off, (int) (off + len), (byte) 0);
                        } else {
                            assertEquals(writes ? NBD_ENOSPC : NBD_EINVAL, r.error(), "error code for " + commandName(type));
                        }
                        if (r.payload() != null) r.payload().release();
                    }));
        }
    }
}
