package io.bridgefs.clienttests;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Protocol features no everyday client exercises on its own: meta context listing, CACHE, huge exports. */
class NbdProtocolIT {
    static final long MiB = 1 << 20;
    static final long TiB = 1L << 40;

    @Test
    void listMetaContextAndCacheCommand(@TempDir Path dir) throws Exception {
        Tools.sparseImage(dir.resolve("m.img"), 64 * MiB, 3, 0, 8 * MiB);
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "m=m.img")) {
            try (RawNbdClient c = new RawNbdClient(s.nbdPort)) {
                c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                c.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
                assertEquals(NBD_REP_ACK, c.optReply().type());
                c.option(NBD_OPT_LIST_META_CONTEXT, RawNbdClient.metaContext("m"));
                RawNbdClient.OptReply ctx = c.optReply();
                assertEquals(NBD_REP_META_CONTEXT, ctx.type());
                assertEquals(BASE_ALLOCATION, new String(ctx.data(), 4, ctx.data().length - 4, StandardCharsets.UTF_8));
                assertEquals(NBD_REP_ACK, c.optReply().type());
                c.option(NBD_OPT_LIST_META_CONTEXT, RawNbdClient.metaContext("m", "x-other:thing"));
                assertEquals(NBD_REP_ACK, c.optReply().type(), "a query that matches nothing lists nothing");
                c.option(NBD_OPT_SET_META_CONTEXT, RawNbdClient.metaContext("m", BASE_ALLOCATION));
                RawNbdClient.OptReply set = c.optReply();
                assertEquals(NBD_REP_META_CONTEXT, set.type());
                int id = ByteBuffer.wrap(set.data()).getInt();
                assertEquals(NBD_REP_ACK, c.optReply().type());
                long[] go = c.go("m");
                assertTrue((go[1] & NBD_FLAG_SEND_CACHE) != 0);

                long fillsBefore = s.metric("bridgefs_cache_fills_total{path=\"nbd\"}");
                c.request(NBD_CMD_CACHE, 0, 1, 0, 4 * MiB);
                c.out.flush();
                assertEquals(0, c.reply(0).error());
                assertEquals(fillsBefore + 1024, s.metric("bridgefs_cache_fills_total{path=\"nbd\"}"), "CACHE filled 4 MiB of pages");
                long hitsBefore = s.metric("bridgefs_cache_hits_total{path=\"nbd\"}");
                c.request(NBD_CMD_READ, 0, 2, 0, 4 * MiB);
                c.out.flush();
                RawNbdClient.Reply r = c.reply(0);
                assertEquals(NBD_REPLY_TYPE_OFFSET_DATA, r.type());
                assertEquals(hitsBefore + 1024, s.metric("bridgefs_cache_hits_total{path=\"nbd\"}"), "the read after CACHE hit every page");

                c.request(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 3, 0, 64 * MiB);
                c.out.flush();
                RawNbdClient.Reply bs = c.reply(0);
                assertEquals(NBD_REPLY_TYPE_BLOCK_STATUS, bs.type());
                ByteBuffer b = ByteBuffer.wrap(bs.data());
                assertEquals(id, b.getInt());
                assertEquals(8 * MiB, b.getInt() & 0xFFFFFFFFL, "REQ_ONE: one extent, the data at the start");
                assertEquals(0, b.getInt());
                assertFalse(b.hasRemaining());

                // CACHE is advisory: at most the largest request (32 MiB) is brought in, whatever is asked,
                // so that one client cannot keep the I/O threads reading (or flush the cache) with 4 GiB ones
                fillsBefore = s.metric("bridgefs_cache_fills_total{path=\"nbd\"}");
                c.request(NBD_CMD_CACHE, 0, 4, 8 * MiB, 56 * MiB);
                c.out.flush();
                assertEquals(0, c.reply(0).error());
                assertEquals(fillsBefore + 32 * MiB / 4096, s.metric("bridgefs_cache_fills_total{path=\"nbd\"}"), "32 MiB of the 56 asked");
            }
        }
    }

    @Test
    void fourTebibyteSparseExport(@TempDir Path dir) throws Exception {
        Tools.require("qemu-io", "nbdinfo");
        Tools.sparseImage(dir.resolve("huge.img"), 4 * TiB, 4);
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "huge=huge.img")) {
            assertEquals(String.valueOf(4 * TiB), Tools.run(Duration.ofSeconds(30), "nbdinfo", "--size", s.uri("huge")).ok("nbdinfo").out().trim());
            Tools.Result r = QemuToolsIT.qemuIo(s.uri("huge"), "write -P 0x3c 3T 1M", "write -P 0x4d 4194303M 1M",
                    "read -P 0x3c 3T 1M", "read -P 0x4d 4194303M 1M", "read -P 0 2T 64k", "flush").ok("qemu-io at 3 and 4 TiB");
            assertFalse(r.out().contains("Pattern verification failed"), r.out());
            assertArrayEquals(new byte[] {0x4d, 0x4d}, QemuToolsIT.hostBytes(dir.resolve("huge.img"), 4 * TiB - 2, 2));
        }
    }
}
