package io.bridgefs.server.nbd;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.nbd.NbdReplyDecoder;
import io.bridgefs.protocol.nbd.NbdRequest;
import io.bridgefs.server.cache.FileBackingStore;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Many cold reads sent in one go over a real image file (O_DIRECT): the small ones go to the executor
 * as one batch (one task) and are read together (those whose pages a large read made resident first
 * too); a read of a page the batch is already filling, the large read and an empty one take the usual
 * path. Every request is answered once, with the file's
 * bytes, and nothing stays pinned.
 */
class NbdColdReadsTest {
    static final int SIZE = NbdSessionModelProperties.SIZE;

    @TempDir
    Path dir;

    /**
     * Runs each task on the test's thread, but a task given while another runs only after it, as a
     * pool's other thread would take it: a read the batch refused may wait for a page the batch fills.
     */
    static final class Trampoline extends NbdFastPathTest.CountingExecutor {
        private final java.util.ArrayDeque<Runnable> queued = new java.util.ArrayDeque<>();
        private boolean running;
        int accepted = Integer.MAX_VALUE;      // tasks taken before it refuses, as a stopping server's pool does

        @Override
        public void execute(Runnable r) {
            if (ran >= accepted) throw new java.util.concurrent.RejectedExecutionException("stopping");
            ran++;
            queued.add(r);
            if (running) return;
            running = true;
            try {
                for (Runnable t; (t = queued.poll()) != null; ) t.run();
            } finally {
                running = false;
            }
        }
    }

    @Test
    void coldReadsSentTogetherAreReadTogetherAndEachAnswered() throws Exception {
        for (boolean structured : new boolean[] {false, true}) {
            Path img = dir.resolve("cold-" + structured + ".img");
            byte[] data = new byte[SIZE];
            new Random(structured ? 1 : 2).nextBytes(data);
            Files.write(img, data);
            var ex = new Trampoline();
            var w = new NbdSessionModelProperties.World(structured, ex, FileBackingStore.open(img, false), 256);

            Random rnd = new Random(3);
            Map<Long, long[]> sent = new HashMap<>();
            ByteBuf b = Unpooled.buffer();
            // twenty reads of one or two pages each, in slots three pages apart (no two share a page, none
            // starts where another ended: no stream), in random order
            List<Integer> slots = new java.util.ArrayList<>(java.util.stream.IntStream.range(0, 20).boxed().toList());
            java.util.Collections.shuffle(slots, rnd);
            for (int i = 0; i < 20; i++) sent.put((long) i, new long[] {(3L * slots.get(i) + 1) * 4096 + rnd.nextInt(1000), 1 + rnd.nextInt(7000)});
            sent.put(20L, new long[] {sent.get(3L)[0], 100});          // a page request 3 is filling
            sent.put(21L, new long[] {0, 96 * 1024});                  // larger than a batched read; ends before a slot
            if (structured) sent.put(22L, new long[] {SIZE - 10, 0});  // nothing to read
            for (var e : sent.entrySet()) NbdRequest.encode(b, NBD_CMD_READ, 0, e.getKey(), e.getValue()[0], e.getValue()[1], null);
            w.ch.writeInbound(b);
            ByteBuf out = w.drain();

            Map<Long, byte[]> got = new HashMap<>();
            NbdReplyDecoder.Reply r;
            while ((r = NbdReplyDecoder.decode(out, c -> (int) sent.get(c)[1])) != null) {
                assertEquals(0, r.error(), "request " + r.cookie());
                assertTrue(r.done());
                ByteBuf p = r.payload();
                if (structured && r.type() == NBD_REPLY_TYPE_OFFSET_DATA) assertEquals(sent.get(r.cookie())[0], p.readLong());
                byte[] bytes = new byte[p.readableBytes()];
                p.readBytes(bytes);
                p.release();
                assertNull(got.put(r.cookie(), bytes), "one reply for request " + r.cookie());
            }
            assertEquals(0, out.readableBytes());
            out.release();
            assertEquals(sent.keySet(), got.keySet(), "every request answered");
            for (var e : sent.entrySet()) {
                int off = (int) e.getValue()[0], len = (int) e.getValue()[1];
                assertArrayEquals(Arrays.copyOfRange(data, off, off + len), got.get(e.getKey()), "request " + e.getKey());
            }
            assertEquals(3 + (structured ? 1 : 0), ex.ran, "one executor task for the batch, one for the read it refused"
                    + " (not run after the batch's reads, on its thread), one for the large read" + (structured ? ", one for the empty one" : ""));
            assertEquals(20, w.export.metrics().batchedReads.getCount(), "the twenty small reads were read in the batch");
            assertEquals(0, w.cache.snapshot().pinnedPages());
            assertEquals(List.of(), w.cache.verify());
            w.ch.finishAndReleaseAll();
            w.cache.close();
        }
    }

    @Test
    void aReadTheBatchRefusesWhileTheServerStopsIsRefusedOnTheEventLoopAndNothingIsHeld() throws Exception {
        Path img = dir.resolve("stopping.img");
        byte[] data = new byte[SIZE];
        new Random(4).nextBytes(data);
        Files.write(img, data);
        var ex = new Trampoline();
        ex.accepted = 1;                                               // the batch runs; then the pool is stopping
        var w = new NbdSessionModelProperties.World(false, ex, FileBackingStore.open(img, false), 256);
        long[][] sent = {{4096, 4096}, {5 * 4096 + 7, 3000}, {4096 + 100, 50}};   // the third: a page the first fills
        ByteBuf b = Unpooled.buffer();
        for (int i = 0; i < sent.length; i++) NbdRequest.encode(b, NBD_CMD_READ, 0, i, sent[i][0], sent[i][1], null);
        w.ch.writeInbound(b);
        ByteBuf out = w.drain();
        Map<Long, NbdReplyDecoder.Reply> got = new HashMap<>();
        NbdReplyDecoder.Reply r;
        while ((r = NbdReplyDecoder.decode(out, c -> c == 2 ? 0 : (int) sent[(int) c][1])) != null) assertNull(got.put(r.cookie(), r));
        out.release();
        assertEquals(java.util.Set.of(0L, 1L, 2L), got.keySet(), "every request answered");
        assertEquals(NBD_ESHUTDOWN, got.get(2L).error(), "the read the batch left to the usual path, refused: the server is stopping");
        for (long c = 0; c < 2; c++) {
            ByteBuf p = got.get(c).payload();
            byte[] bytes = new byte[p.readableBytes()];
            p.readBytes(bytes);
            p.release();
            int off = (int) sent[(int) c][0], len = (int) sent[(int) c][1];
            assertArrayEquals(Arrays.copyOfRange(data, off, off + len), bytes, "request " + c);
        }
        assertEquals(1, ex.ran, "one executor task: the batch");
        assertEquals(2, w.export.metrics().batchedReads.getCount());
        assertEquals(0, w.cache.snapshot().pinnedPages());
        assertEquals(List.of(), w.cache.verify());
        w.ch.finishAndReleaseAll();
        w.cache.close();
    }
}
