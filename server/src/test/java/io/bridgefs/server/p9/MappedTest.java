package io.bridgefs.server.p9;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.posix.Posix;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** QEMU's mapped-xattr layout, byte for byte, and the guest's view laid over the host's stat. */
class MappedTest {
    @TempDir
    Path dir;

    @Test
    void theGuestsViewIsKeptAsQemuKeepsIt() throws Exception {
        Path f = Files.createFile(dir.resolve("f"));
        Posix.Stat host = Posix.fstatat(Posix.AT_FDCWD, f.toString(), Posix.AT_SYMLINK_NOFOLLOW);
        assertSame(host, Mapped.overlay(f.toString(), host), "a file without xattrs reads as the host has it");
        Mapped.set(f.toString(), 1000, 1001, 0020644, 0x0103L);
        // little-endian, 4 bytes for uid/gid/mode and 8 for rdev, as QEMU's local_set_xattrat writes them
        assertArrayEquals(new byte[] {(byte) 0xe8, 0x03, 0, 0}, Posix.getxattr(f.toString(), "user.virtfs.uid"));
        assertArrayEquals(new byte[] {(byte) 0xa4, 0x21, 0, 0}, Posix.getxattr(f.toString(), "user.virtfs.mode"));
        assertArrayEquals(new byte[] {0x03, 0x01, 0, 0, 0, 0, 0, 0}, Posix.getxattr(f.toString(), "user.virtfs.rdev"));
        Posix.Stat seen = Mapped.overlay(f.toString(), host);
        assertEquals(1000, seen.uid());
        assertEquals(1001, seen.gid());
        assertEquals(0020644, seen.mode(), "a character device in the guest's view");
        assertEquals(0x103, seen.rdev());
        assertEquals(host.ino(), seen.ino());
        // a directory stays a directory whatever its xattr says
        Path d = Files.createDirectory(dir.resolve("d"));
        Mapped.set(d.toString(), -1, -1, 0100755, -1);
        assertEquals(040755, Mapped.overlay(d.toString(), Posix.fstatat(Posix.AT_FDCWD, d.toString(), 0)).mode());
    }

    @Test
    void theServersXattrsAreHidden() {
        byte[] list = "user.a\0user.virtfs.uid\0user.virtfs.mode\0security.selinux\0user.virtfsx\0".getBytes(StandardCharsets.UTF_8);
        assertEquals("user.a\0security.selinux\0user.virtfsx\0", new String(Mapped.hide(list), StandardCharsets.UTF_8));
        assertTrue(Mapped.allowed("user.note"));
        assertFalse(Mapped.allowed("user.virtfs.gid"));
        assertFalse(Mapped.allowed("trusted.overlay.opaque"));
        assertFalse(Mapped.allowed("security.capability"));
        assertFalse(Mapped.allowed("system.posix_acl_access"));
    }
}
