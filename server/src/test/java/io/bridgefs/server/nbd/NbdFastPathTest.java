package io.bridgefs.server.nbd;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.nbd.NbdReplyDecoder;
import io.netty.buffer.ByteBuf;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * Reads of resident pages and writes into them are answered on the network thread (issue 11); misses,
 * FUA writes and everything else still run on the executor, which here counts what reaches it.
 */
class NbdFastPathTest {
    static class CountingExecutor extends NbdSessionModelProperties.DirectExecutor {
        int ran;

        @Override
        public void execute(Runnable r) {
            ran++;
            super.execute(r);
        }
    }

    static byte[] data(NbdReplyDecoder.Reply r, boolean structured) {
        ByteBuf p = r.payload();
        if (structured) p.skipBytes(8);
        byte[] got = new byte[p.readableBytes()];
        p.readBytes(got);
        p.release();
        return got;
    }

    @Test
    void residentReadsAndWritesSkipTheExecutorAndMissesAndFuaDoNot() {
        for (boolean structured : new boolean[] {false, true}) {
            CountingExecutor ex = new CountingExecutor();
            var w = new NbdSessionModelProperties.World(structured, ex);
            assertEquals(0, w.send(NBD_CMD_READ, 0, 0, 8192, null).error());
            assertEquals(1, ex.ran, "a read that misses runs on the executor");

            assertEquals(0, w.send(NBD_CMD_READ, 0, 4096, 4096, null).error());
            assertEquals(1, ex.ran, "a read of resident pages does not");

            byte[] d = new byte[5000];
            Arrays.fill(d, (byte) 7);
            assertEquals(0, w.send(NBD_CMD_WRITE, 0, 1000, d.length, d).error());
            assertEquals(1, ex.ran, "a write into resident pages does not");
            assertArrayEquals(d, data(w.send(NBD_CMD_READ, 0, 1000, d.length, null), structured));
            assertEquals(1, ex.ran);

            assertEquals(0, w.send(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 10, new byte[10]).error());
            assertEquals(2, ex.ran, "a FUA write must reach stable storage: the executor");
            assertEquals(0, w.send(NBD_CMD_WRITE, 0, 128 * 1024, 10, new byte[10]).error());
            assertEquals(3, ex.ran, "a write into part of a page not in the cache (its old content must be read first): the executor");
            assertEquals(0, w.send(NBD_CMD_FLUSH, 0, 0, 0, null).error());
            assertEquals(4, ex.ran);
            w.ch.finishAndReleaseAll();
        }
    }

    static byte[] filled(int n, int value) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) value);
        return b;
    }

    @Test
    void wholePageWritesToPagesNotCachedSkipTheExecutorAndPartialOrFuaOnesDoNot() {
        CountingExecutor ex = new CountingExecutor();
        var store = new NbdSessionModelProperties.Mem();
        Arrays.fill(store.data, (byte) 9);
        var w = new NbdSessionModelProperties.World(false, ex, store, 64);

        byte[] d = filled(3 * 4096, 5);
        assertEquals(0, w.send(NBD_CMD_WRITE, 0, 8192, d.length, d).error());
        assertEquals(0, ex.ran, "three whole pages not in the cache: answered on the network thread");
        assertArrayEquals(d, data(w.send(NBD_CMD_READ, 0, 8192, d.length, null), false));
        assertEquals(0, ex.ran, "and they are resident now");

        // from 100 bytes into page 16 to 100 bytes into page 18: the first and last pages' old content
        // must be read, so the executor writes it (after the network thread may have written page 17)
        int at = 64 * 1024 + 100;
        assertEquals(0, w.send(NBD_CMD_WRITE, 0, at, 8192, filled(8192, 6)).error());
        assertEquals(1, ex.ran, "a write needing a page's old content: the executor");
        byte[] expect = filled(3 * 4096, 9);
        Arrays.fill(expect, 100, 100 + 8192, (byte) 6);
        assertArrayEquals(expect, data(w.send(NBD_CMD_READ, 0, 64 * 1024, expect.length, null), false));

        assertEquals(0, w.send(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 128 * 1024, 4096, filled(4096, 4)).error());
        assertEquals(2, ex.ran, "a FUA write of a whole page not cached: the executor");
        assertArrayEquals(filled(4096, 4), Arrays.copyOfRange(store.data, 128 * 1024, 132 * 1024), "FUA: in the image at once");

        // two whole pages arriving in three pieces, cut inside each page (the request's header is 28 bytes):
        // still whole pages, taken on the network thread, nothing read from the image
        byte[] split = filled(2 * 4096, 3);
        assertEquals(0, w.send(NBD_CMD_WRITE, 0, 160 * 1024, split.length, split, 28 + 1448, 28 + 4096 + 100).error());
        assertEquals(2, ex.ran, "a write in pieces, into pages not cached: the network thread");
        assertEquals(2, w.cache.snapshot().fills(io.bridgefs.server.cache.IoPath.NBD),
                "the only pages read: the first and last of the unaligned write above");

        assertEquals(0, w.send(NBD_CMD_FLUSH, 0, 0, 0, null).error());
        assertArrayEquals(split, Arrays.copyOfRange(store.data, 160 * 1024, 160 * 1024 + split.length));
        assertArrayEquals(d, Arrays.copyOfRange(store.data, 8192, 8192 + d.length), "the network thread's write, flushed");
        assertArrayEquals(expect, Arrays.copyOfRange(store.data, 64 * 1024, 64 * 1024 + expect.length));
        assertEquals(9, store.data[8191]);
        assertEquals(9, store.data[8192 + d.length]);
        w.ch.finishAndReleaseAll();
    }
}
