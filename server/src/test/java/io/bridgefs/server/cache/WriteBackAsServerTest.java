package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.posix.Credentials;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Write-back is the server's work, whichever thread does it: a thread acting as a 9P user (passthrough)
 * that writes another's dirty pages back (its fsync, an eviction that must wait for write-back, a last
 * close) writes them as the server, so the kernel does not clear the file's setuid bit as it would for
 * an unprivileged writer, and the thread is that user again afterwards. Needs a root server (CI runs as root).
 */
class WriteBackAsServerTest {
    @Test
    void writeBackOnAThreadActingAsAUserKeepsTheSetuidBit(@TempDir Path dir) throws Exception {
        if (!io.bridgefs.server.posix.SwitchesUsers.orSay("WriteBackAsServerTest:")) return;
        Path tool = dir.resolve("tool");
        Files.write(tool, new byte[3 * PageCache.PAGE_SIZE]);
        Files.setAttribute(tool, "unix:mode", 04755);
        PageCache cache = new PageCache(1 << 20, CacheMode.WRITEBACK);
        try {
            CachedFile f = cache.open(new FileKey(11, 1), FileBackingStore.open(tool, false), false);
            for (int page = 0; page < 3; page++) {     // whole pages (O_DIRECT) and a partial one
                f.write(IoPath.NINEP, (long) page * PageCache.PAGE_SIZE + (page == 2 ? 100 : 0),
                        ByteBuffer.wrap(new byte[] {7, 7, 7}), false);
            }
            Credentials.hold(Credentials.identity(1000));
            try {
                f.flush();
                assertEquals(1000, Credentials.fsuid(), "the thread acts as its user again after the write-back");
            } finally {
                Credentials.serverAgain();
            }
            assertEquals(0, cache.snapshot().dirtyBytes());
            assertEquals(7, Files.readAllBytes(tool)[PageCache.PAGE_SIZE]);
            assertEquals(04755, (Integer) Files.getAttribute(tool, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 07777,
                    "setuid kept: the write-back ran as the server");
            f.close();
        } finally {
            cache.close();
        }
    }
}
