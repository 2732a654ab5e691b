package io.bridgefs.server.bridged;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.cache.Readahead;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bridged image against the real ext4 tools: the image of a crafted tree, read through
 * {@link BridgedDisk} into a file, must pass {@code e2fsck -fn} and list, stat and read back in
 * {@code debugfs} as the host tree is. The NBD path and a guest are tried by client-tests.
 */
class BridgedImageTest {

    /** Every byte of the disk's image, written to {@code out} as a reader would see it. */
    static void copyImage(BridgedDisk disk, Path out) throws IOException {
        try (FileChannel ch = FileChannel.open(out, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            long size = disk.size();
            for (long pos = 0; pos < size; pos += 1 << 20) {
                int n = (int) Math.min(1 << 20, size - pos);
                BridgedDisk.Pieces p = disk.read(IoPath.NBD, pos, n);
                try {
                    long at = pos;
                    int total = 0;
                    for (ByteBuffer b : p.buffers()) {
                        ByteBuffer d = b.duplicate();
                        total += d.remaining();
                        while (d.hasRemaining()) at += ch.write(d, at);
                    }
                    assertEquals(n, total, "a read returns exactly the bytes asked for");
                } finally {
                    p.release().run();
                }
            }
        }
    }

    static String run(Path dir, String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        int rc = p.exitValue();
        if (rc != 0) throw new AssertionError(String.join(" ", cmd) + " exited " + rc + ":\n" + out);
        return out;
    }

    /** A tree with every kind of entry the image must carry. */
    static void craft(Path root) throws IOException {
        Files.createDirectories(root.resolve("a/b/c"));
        Files.writeString(root.resolve("hello.txt"), "hello\n");
        Files.write(root.resolve("empty"), new byte[0]);
        byte[] big = new byte[5 * 1024 * 1024 + 123];
        new java.util.Random(7).nextBytes(big);
        Files.write(root.resolve("a/big.bin"), big);
        Files.createLink(root.resolve("a/b/big-link"), root.resolve("a/big.bin"));
        Files.createSymbolicLink(root.resolve("short-link"), Path.of("hello.txt"));
        Files.createSymbolicLink(root.resolve("a/long-link"), Path.of("x".repeat(200) + "/target"));
        Files.createSymbolicLink(root.resolve("escape"), Path.of("/etc/passwd"));
        Files.writeString(root.resolve("n".repeat(255)), "longest name\n");
        // sparse: data islands far apart, more than the inode's four extents
        try (RandomAccessFile f = new RandomAccessFile(root.resolve("sparse").toFile(), "rw")) {
            for (int i = 0; i < 40; i++) {
                f.seek(i * (1L << 24));
                f.write(("island " + i + "\n").getBytes(StandardCharsets.UTF_8));
            }
            f.setLength(6L << 30);               // over 4 GiB, ends in a hole
        }
        Posix.mknodat(Posix.AT_FDCWD, root.resolve("fifo").toString(), Posix.S_IFIFO | 0640, 0);
        Posix.mknodat(Posix.AT_FDCWD, root.resolve("sock").toString(), Posix.S_IFSOCK | 0600, 0);
        if (io.bridgefs.server.posix.Credentials.privileged()) {
            Posix.mknodat(Posix.AT_FDCWD, root.resolve("null").toString(), Posix.S_IFCHR | 0666, (1L << 8) | 3);
            Posix.mknodat(Posix.AT_FDCWD, root.resolve("bigdev").toString(), Posix.S_IFBLK | 0600, (300L << 8) | 5);
        }
        Path many = Files.createDirectories(root.resolve("many"));
        for (int i = 0; i < 3000; i++) Files.writeString(many.resolve("file-with-a-longish-name-" + i), Integer.toString(i));
    }

    /**
     * The large cases: a directory of 100,000 entries, 65,100 of them subdirectories (over ext4's 65,000
     * links: dir_nlink), and a sparse file of 1,500 data islands (an extent tree two levels deep).
     */
    @Test
    void hugeDirectoriesAndDeepExtentTreesAreClean(@TempDir Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("tree"));
        Path big = Files.createDirectories(root.resolve("big"));
        for (int i = 0; i < 65_100; i++) Files.createDirectory(big.resolve("d" + i));
        for (int i = 0; i < 34_900; i++) Files.createFile(big.resolve("f" + i));
        try (RandomAccessFile f = new RandomAccessFile(root.resolve("islands").toFile(), "rw")) {
            for (int i = 0; i < 1500; i++) {
                f.seek(i * 65536L);
                f.writeInt(i);
            }
        }
        Path img = tmp.resolve("image");
        try (PageCache cache = new PageCache(16 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "big", Readahead.OFF)) {
            HostTree.Node islands = disk.image().tree.nodes.stream().filter(n -> "islands".equals(n.path())).findFirst().orElseThrow();
            assertEquals(2, Ext4Image.treeDepth(Ext4Image.extentCount(islands)), "1,500 islands: a two-level extent tree");
            copyImage(disk, img);
        }
        run(tmp, "e2fsck", "-fn", img.toString());
        String stat = run(tmp, "debugfs", "-R", "stat /big", img.toString());
        assertTrue(stat.contains("Links: 1"), "over 65,000 subdirectories: dir_nlink's link count of 1\n" + stat);
        String count = run(tmp, "sh", "-c", "debugfs -R 'ls /big' " + img + " 2>/dev/null | tr -s ' ' '\\n' | grep -c '^[df][0-9]'");
        assertEquals("100000", count.trim());
        String island = run(tmp, "sh", "-c", "debugfs -R 'dump /islands " + tmp.resolve("islands.out") + "' " + img + " 2>/dev/null; "
                + "od -An -tx1 -j " + (1499 * 65536L) + " -N 4 " + tmp.resolve("islands.out"));
        assertEquals("00 00 05 db", island.trim(), "the last island (1499) read back through the two-level tree");
    }

    /**
     * Reading every file of a tree larger than the table of open files keeps at most that many open (the
     * descriptor a file is opened with beneath the root is kept as its own, plus an O_DIRECT one where the
     * file system has it), and closing the disk and the cache closes every one.
     */
    @Test
    void descriptorsStayBoundedAndAllAreClosed(@TempDir Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("tree"));
        for (int i = 0; i < 700; i++) Files.writeString(root.resolve("f" + i), ("file " + i + "\n").repeat(100));
        // a first round opens what stays open for the process's life (JNA's libffi scratch file)
        try (PageCache cache = new PageCache(16 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "fds", Readahead.OFF)) {
            copyImage(disk, tmp.resolve("image"));
        }
        long before = Posix.openDescriptors();
        try (PageCache cache = new PageCache(16 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "fds", Readahead.OFF)) {
            copyImage(disk, tmp.resolve("image"));
            long held = Posix.openDescriptors() - before;
            assertTrue(held >= 256, "the 256 most recent files stay open between reads: " + held);
            assertTrue(held <= 2 * 256 + 8, "700 files read, at most 256 held open (two descriptors each at most): " + held);
        }
        // other descriptors of this shared test JVM may close meanwhile (a cleaner of an earlier test's
        // channel): the count may fall, never rise, and nothing may still lead into the tree
        assertEquals(0L, fdsUnder(root), "closing the disk and the cache closes every file's descriptors: " + fds());
        assertTrue(Posix.openDescriptors() <= before, "no descriptor more than before: " + fds());
        String out = run(tmp, "debugfs", "-R", "cat /f699", tmp.resolve("image").toString());
        assertTrue(out.contains(("file 699\n").repeat(100)), "the last file read back through the image:\n" + out.substring(0, Math.min(200, out.length())));
    }

    /**
     * Eight threads reading one block at a time, each in its own random order, from a cold cache over a
     * tree of 400 directories, with only 3 directory descriptors kept (so descriptors are dropped from
     * the table while other threads resolve names in them), read the files' data exactly as one reader does; and
     * closing leaves no descriptor into the tree. A directory descriptor closed while in use would make
     * its files' stats fail, and those files read as zeros.
     */
    @Test
    void concurrentReadersOverManyDirectoriesReadWhatOneReaderReads(@TempDir Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("tree"));
        for (int d = 0; d < 200; d++) {
            for (int s = 0; s < 2; s++) {
                Path sub = Files.createDirectories(root.resolve("d" + d).resolve("s" + s));
                Files.writeString(sub.resolve("f"), ("dir " + d + " sub " + s + "\n").repeat(300 + 37 * d));
            }
        }
        try (PageCache cache = new PageCache(16 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "one", Readahead.OFF)) {
            copyImage(disk, tmp.resolve("one"));
        }
        byte[] expected = Files.readAllBytes(tmp.resolve("one"));
        byte[] got = new byte[expected.length];
        long dataStart;
        try (PageCache cache = new PageCache(16 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "many", Readahead.OFF, 3, HostTree.DEFAULT_MAX_ENTRIES)) {
            dataStart = disk.image().dataStart;
            int blocks = expected.length / Ext4Image.BS;
            ExecutorService pool = Executors.newFixedThreadPool(8);
            try {
                List<Future<?>> done = new ArrayList<>();
                for (int t = 0; t < 8; t++) {
                    List<Integer> order = new ArrayList<>();
                    for (int b = t; b < blocks; b += 8) order.add(b);
                    Collections.shuffle(order, new Random(t));
                    done.add(pool.submit(() -> {
                        for (int b : order) System.arraycopy(readImage(disk, (long) b * Ext4Image.BS, Ext4Image.BS), 0, got, b * Ext4Image.BS, Ext4Image.BS);
                        return null;
                    }));
                }
                for (var f : done) f.get(120, TimeUnit.SECONDS);
            } finally {
                pool.shutdownNow();
            }
        }
        // the data area: the files' pages (the blocks before it are generated, with the scan's time in them)
        assertTrue(dataStart > 0 && dataStart < expected.length / Ext4Image.BS - 400, "400 files of data after block " + dataStart);
        for (int b = (int) dataStart; b < expected.length / Ext4Image.BS; b++) {
            int at = b * Ext4Image.BS;
            assertArrayEquals(Arrays.copyOfRange(expected, at, at + Ext4Image.BS), Arrays.copyOfRange(got, at, at + Ext4Image.BS),
                    "block " + b + " read by one of eight threads differs from one reader's");
        }
        assertEquals(0L, fdsUnder(root), "closing the disk closes every directory's and file's descriptor: " + fds());
    }

    /** How many of this process's descriptors lead to {@code dir} or below it. */
    static long fdsUnder(Path dir) throws IOException {
        Path real = dir.toRealPath();
        return descriptors().values().stream().filter(t -> t.startsWith(real)).count();
    }

    /** This process's open descriptors and what they lead to, for a failure message. */
    static String fds() throws IOException {
        StringBuilder b = new StringBuilder();
        descriptors().forEach((fd, target) -> b.append(fd).append("->").append(target).append(' '));
        return b.toString();
    }

    /** This process's open descriptors (by number, in listing order) and what each leads to. */
    static java.util.Map<String, Path> descriptors() throws IOException {
        java.util.Map<String, Path> all = new java.util.LinkedHashMap<>();
        try (var d = Files.newDirectoryStream(Path.of("/proc/self/fd"))) {
            for (Path p : d) {
                try {
                    all.put(p.getFileName().toString(), Files.readSymbolicLink(p));
                } catch (IOException e) {
                    // closed while listed (the directory stream's own descriptor)
                }
            }
        }
        return all;
    }

    /** The image's bytes of [offset, offset + n) as one array. */
    static byte[] readImage(BridgedDisk disk, long offset, int n) throws IOException {
        BridgedDisk.Pieces p = disk.read(IoPath.NBD, offset, n);
        try {
            ByteBuffer all = ByteBuffer.allocate(n);
            for (ByteBuffer b : p.buffers()) all.put(b.duplicate());
            return all.array();
        } finally {
            p.release().run();
        }
    }

    /**
     * Contents are live, the shape a snapshot: a file rewritten on the host reads as its new bytes (its
     * cached pages revalidated by the stat), one cut short reads as zeros past its new end, one replaced by
     * another file at its path reads as zeros; a rescan takes the new shape in.
     */
    @Test
    void fileContentsAreLiveAndTheShapeASnapshot(@TempDir Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("tree"));
        Files.write(root.resolve("a"), "A".repeat(8192).getBytes(StandardCharsets.US_ASCII));
        Files.write(root.resolve("b"), "B".repeat(8192).getBytes(StandardCharsets.US_ASCII));
        try (PageCache cache = new PageCache(16 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "live", Readahead.OFF)) {
            Ext4Image img = disk.image();
            HostTree.Node a = img.tree.nodes.stream().filter(x -> "a".equals(x.path())).findFirst().orElseThrow();
            HostTree.Node b = img.tree.nodes.stream().filter(x -> "b".equals(x.path())).findFirst().orElseThrow();
            long atA = a.dataBlock * 4096, atB = b.dataBlock * 4096;
            assertEquals('A', readImage(disk, atA, 8192)[8191]);
            assertEquals('B', readImage(disk, atB, 8192)[0]);

            Thread.sleep(10);                            // a new mtime, whatever the file system's clock granularity
            try (RandomAccessFile f = new RandomAccessFile(root.resolve("a").toFile(), "rw")) {
                f.write("live".getBytes(StandardCharsets.US_ASCII));
            }
            assertEquals("liveAAAA", new String(readImage(disk, atA, 8), StandardCharsets.US_ASCII), "the host's new bytes, not the cached ones");
            try (RandomAccessFile f = new RandomAccessFile(root.resolve("a").toFile(), "rw")) {
                f.setLength(100);
            }
            byte[] cut = readImage(disk, atA, 8192);
            assertEquals('A', cut[99]);
            assertEquals(0, cut[100], "zeros past the file's new end");
            assertEquals(0, cut[8191]);

            Files.delete(root.resolve("b"));
            Files.write(root.resolve("b"), "X".repeat(8192).getBytes(StandardCharsets.US_ASCII));
            assertArrayEquals(new byte[8192], readImage(disk, atB, 8192), "another file at the path is not the scanned one");

            Files.write(root.resolve("c"), "new".getBytes(StandardCharsets.US_ASCII));
            assertEquals(img.tree.entries(), disk.image().tree.entries(), "the shape is a snapshot");
            disk.attach();
            assertNull(disk.rescanIfIdle(), "no rescan under a connected client");
            disk.detach();                               // the last client left: the rescan asked for runs now
            long deadline = System.currentTimeMillis() + 10_000;
            while (disk.image() == img && System.currentTimeMillis() < deadline) Thread.sleep(10);
            assertEquals(img.tree.entries() + 1, disk.image().tree.entries(), "the rescan took c in");
            assertEquals(List.of(), cache.verify());
        }
    }

    @Test
    void craftedTreeIsACleanExt4ImageWithTheHostsContent(@TempDir Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("tree"));
        craft(root);
        Path img = tmp.resolve("image");
        try (PageCache cache = new PageCache(16 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "test", Readahead.OFF)) {
            copyImage(disk, img);
            assertTrue(disk.size() > 6L << 20 && disk.size() < 64L << 20, "image size from the data (not the sparse size): " + disk.size());
            assertEquals(List.of(), cache.verify());
        }
        run(tmp, "e2fsck", "-fn", img.toString());
        assertEquals("hello\n", run(tmp, "debugfs", "-R", "cat /hello.txt", img.toString()).replaceAll("(?m)^debugfs.*\\n", ""));
        String md5Host = run(tmp, "md5sum", root.resolve("a/big.bin").toString()).split(" ")[0];
        String md5Image = run(tmp, "sh", "-c", "debugfs -R 'cat /a/b/big-link' " + img + " 2>/dev/null | md5sum").split(" ")[0];
        assertEquals(md5Host, md5Image, "hard link's content");
        String stat = run(tmp, "debugfs", "-R", "stat /a/big.bin", img.toString());
        assertTrue(stat.contains("Links: 2"), stat);
        String ls = run(tmp, "debugfs", "-R", "ls -l /", img.toString());
        assertTrue(ls.contains("n".repeat(255)), ls);
        assertTrue(ls.contains("lost+found"), ls);
        assertTrue(run(tmp, "debugfs", "-R", "cat /a/long-link", img.toString()).contains("x".repeat(200) + "/target"));
        assertTrue(run(tmp, "debugfs", "-R", "stat /escape", img.toString()).contains("/etc/passwd"));
        String sparse = run(tmp, "debugfs", "-R", "stat /sparse", img.toString());
        assertTrue(sparse.contains("Size: " + (6L << 30)), sparse);
        String island = run(tmp, "sh", "-c", "debugfs -R 'dump /sparse " + tmp.resolve("sparse.out") + "' " + img + " 2>/dev/null; "
                + "dd if=" + tmp.resolve("sparse.out") + " bs=16M skip=39 count=1 2>/dev/null | head -c 10");
        assertEquals("island 39\n", island);
        String many = run(tmp, "sh", "-c", "debugfs -R 'ls /many' " + img + " 2>/dev/null | tr -s ' ' '\\n' | grep -c file-with");
        assertEquals("3000", many.trim());
    }
}
