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
    static final class CountingExecutor extends NbdSessionModelProperties.DirectExecutor {
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
            assertEquals(3, ex.ran, "a write into a page not in the cache: the executor");
            assertEquals(0, w.send(NBD_CMD_FLUSH, 0, 0, 0, null).error());
            assertEquals(4, ex.ran);
            w.ch.finishAndReleaseAll();
        }
    }
}
