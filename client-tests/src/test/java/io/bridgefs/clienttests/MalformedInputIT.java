package io.bridgefs.clienttests;

import static io.bridgefs.protocol.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad input over a raw socket: the server answers as the spec says (option errors in the handshake,
 * NBD_E* errors in transmission) or disconnects, logs it with the peer's address, and keeps serving.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MalformedInputIT {
    static final long MiB = 1 << 20;
    @TempDir
    static Path dir;
    BridgefsProcess server;

    @BeforeAll
    void start() throws Exception {
        Tools.sparseImage(dir.resolve("rw.img"), 64 * MiB, 7);
        Tools.sparseImage(dir.resolve("ro.img"), 8 * MiB, 8, 0, MiB);
        server = BridgefsProcess.start(dir, "--nbd-export", "rw=rw.img", "--nbd-export", "ro=ro.img,ro");
    }

    @AfterAll
    void stop() throws Exception {
        assertEquals(0, server.stop(), "clean exit after all the abuse");
    }

    RawNbdClient connect() throws Exception {
        RawNbdClient c = new RawNbdClient(server.nbdPort);
        c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        return c;
    }

    void stillServes() throws Exception {
        Tools.run(Duration.ofSeconds(30), "nbdinfo", "--size", server.uri("rw")).ok("nbdinfo after bad input");
    }

    @Test
    void unknownClientFlagsDisconnect() throws Exception {
        try (RawNbdClient c = new RawNbdClient(server.nbdPort)) {
            c.clientFlags(0x80);
            assertTrue(c.closedByServer());
        }
        stillServes();
        assertTrue(server.log().contains("unknown client flags"), "logged with the peer address");
    }

    @Test
    void badOptionMagicDisconnects() throws Exception {
        try (RawNbdClient c = connect()) {
            c.out.writeLong(0x1122334455667788L);
            c.out.writeLong(0);
            c.out.flush();
            assertTrue(c.closedByServer());
        }
        assertTrue(server.log().matches("(?s).*/127\\.0\\.0\\.1:\\d+: handshake: bad option magic.*"), "logged once with peer");
        stillServes();
    }

    @Test
    void optionErrorsUseRepErrCodesAndTheSessionGoesOn() throws Exception {
        try (RawNbdClient c = connect()) {
            c.option(42, new byte[3]);
            assertEquals(NBD_REP_ERR_UNSUP, c.optReply().type());
            c.option(NBD_OPT_LIST, new byte[] {1});
            assertEquals(NBD_REP_ERR_INVALID, c.optReply().type());
            c.option(NBD_OPT_STARTTLS, new byte[0]);
            assertEquals(NBD_REP_ERR_UNSUP, c.optReply().type());
            c.option(NBD_OPT_SET_META_CONTEXT, RawNbdClient.metaContext("rw", BASE_ALLOCATION));
            assertEquals(NBD_REP_ERR_INVALID, c.optReply().type(), "meta contexts need structured replies first");
            c.option(NBD_OPT_GO, new byte[] {0, 0, 0, 9, 'x'});
            assertEquals(NBD_REP_ERR_INVALID, c.optReply().type(), "name length beyond the data");
            c.option(NBD_OPT_GO, RawNbdClient.infoRequest("nope"));
            assertEquals(NBD_REP_ERR_UNKNOWN, c.optReply().type());
            byte[] huge = new byte[1 << 20];
            c.option(NBD_OPT_INFO, huge);
            assertEquals(NBD_REP_ERR_TOO_BIG, c.optReply().type(), "1 MiB of option data is refused, unread");
            c.option(NBD_OPT_LIST, new byte[0]);
            int servers = 0;
            while (true) {
                RawNbdClient.OptReply r = c.optReply();
                if (r.type() == NBD_REP_ACK) break;
                assertEquals(NBD_REP_SERVER, r.type());
                servers++;
            }
            assertEquals(2, servers);
            long[] go = c.go("rw");
            assertEquals(64 * MiB, go[0]);
            c.request(NBD_CMD_READ, 0, 1, 0, 4096);
            c.out.flush();
            RawNbdClient.Reply r = c.reply(4096);
            assertEquals(0, r.error());
            assertEquals(1, r.cookie());
        }
    }

    @Test
    void transmissionErrorsUseErrnoCodes() throws Exception {
        try (RawNbdClient c = connect()) {
            c.go("rw");
            c.request(NBD_CMD_READ, 0, 1, 64 * MiB - 100, 4096);       // past the end
            c.request(NBD_CMD_READ, 0, 2, 0, 64 * MiB);                 // over the 32 MiB maximum
            c.request(NBD_CMD_READ, 0, 3, Long.MIN_VALUE, 512);         // offset 2^63: unsigned, out of range
            c.request(NBD_CMD_READ, 0, 4, -4096, 4096);                 // offset 2^64-4096
            c.request(99, 0, 5, 0, 0);                                  // unknown command
            c.request(NBD_CMD_READ, 0x8000, 6, 0, 512);                 // unknown flag
            c.request(NBD_CMD_BLOCK_STATUS, 0, 7, 0, 4096);             // no meta context negotiated
            c.request(NBD_CMD_WRITE, 0, 8, 64 * MiB, 0);                // zero-length write at the end: fine
            c.request(NBD_CMD_WRITE_ZEROES, 0, 9, 63 * MiB, 2 * MiB);   // past the end
            c.out.flush();
            Map<Long, Integer> errors = new HashMap<>();
            for (int i = 0; i < 9; i++) {
                RawNbdClient.Reply r = c.reply(0);
                errors.put(r.cookie(), r.error());
            }
            assertEquals(NBD_EINVAL, errors.get(1L));
            assertEquals(NBD_EINVAL, errors.get(2L));
            assertEquals(NBD_EINVAL, errors.get(3L));
            assertEquals(NBD_EINVAL, errors.get(4L));
            assertEquals(NBD_EINVAL, errors.get(5L));
            assertEquals(NBD_EINVAL, errors.get(6L));
            assertEquals(NBD_EINVAL, errors.get(7L));
            assertEquals(0, errors.get(8L));
            assertEquals(NBD_ENOSPC, errors.get(9L));
            // an oversized write: 40 MiB announced and sent; refused without buffering, stream stays in step
            byte[] big = new byte[40 << 20];
            c.write(10, 0, big);
            c.request(NBD_CMD_FLUSH, 0, 11, 0, 0);
            c.out.flush();
            RawNbdClient.Reply a = c.reply(0), b = c.reply(0);
            Map<Long, Integer> e2 = Map.of(a.cookie(), a.error(), b.cookie(), b.error());
            assertEquals(NBD_EINVAL, e2.get(10L));
            assertEquals(0, e2.get(11L));
        }
        stillServes();
    }

    @Test
    void readOnlyExportRefusesWritesWithEperm() throws Exception {
        try (RawNbdClient c = connect()) {
            long[] go = c.go("ro");
            assertTrue((go[1] & NBD_FLAG_READ_ONLY) != 0);
            c.write(1, 0, new byte[512]);
            c.request(NBD_CMD_TRIM, 0, 2, 0, 4096);
            c.request(NBD_CMD_WRITE_ZEROES, 0, 3, 0, 4096);
            c.request(NBD_CMD_FLUSH, 0, 4, 0, 0);
            c.out.flush();
            Map<Long, Integer> errors = new HashMap<>();
            for (int i = 0; i < 4; i++) {
                RawNbdClient.Reply r = c.reply(0);
                errors.put(r.cookie(), r.error());
            }
            assertEquals(Map.of(1L, NBD_EPERM, 2L, NBD_EPERM, 3L, NBD_EPERM, 4L, 0), errors);
        }
        byte[] head = Files.readAllBytes(dir.resolve("ro.img"));
        assertNotEquals(0, head[0] | head[1] | head[2] | head[3], "read-only image untouched");
    }

    @Test
    void connectionCutMidWriteLeavesDataAndServerIntact() throws Exception {
        byte[] before = java.util.Arrays.copyOfRange(Files.readAllBytes(dir.resolve("rw.img")), (int) (32 * MiB), (int) (32 * MiB) + 65536);
        try (RawNbdClient c = connect()) {
            c.go("rw");
            c.request(NBD_CMD_WRITE, 0, 1, 32 * MiB, 65536);
            c.out.write(new byte[30000]);                             // less than announced
            c.out.flush();
        }
        Thread.sleep(300);
        stillServes();
        try (RawNbdClient c = connect()) {
            c.go("rw");
            c.request(NBD_CMD_READ, 0, 1, 32 * MiB, 65536);
            c.out.flush();
            RawNbdClient.Reply r = c.reply(65536);
            assertArrayEquals(before, r.data(), "a write whose payload never fully arrived changed nothing");
        }
    }

    @Test
    void badRequestMagicDisconnectsAndPipelinedRepliesComeBackByCookie() throws Exception {
        try (RawNbdClient c = connect()) {
            c.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
            assertEquals(NBD_REP_ACK, c.optReply().type());
            c.go("rw");
            for (int i = 0; i < 48; i++) c.request(NBD_CMD_READ, 0, 1000 + i, i * 65536L, 65536);
            c.out.flush();
            java.util.Set<Long> seen = new java.util.HashSet<>();
            for (int i = 0; i < 48; i++) {
                RawNbdClient.Reply r = c.reply(0);
                assertEquals(NBD_REPLY_TYPE_OFFSET_DATA, r.type());
                assertEquals(8 + 65536, r.data().length);
                seen.add(r.cookie());
            }
            assertEquals(48, seen.size(), "every cookie answered once");
            c.out.writeInt(0xdeadbeef);
            c.out.write(new byte[24]);
            c.out.flush();
            assertTrue(c.closedByServer());
        }
        stillServes();
    }
}
