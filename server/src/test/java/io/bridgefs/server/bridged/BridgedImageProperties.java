package io.bridgefs.server.bridged;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.cache.Readahead;
import io.bridgefs.server.posix.Posix;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import net.jqwik.api.*;

/**
 * Generated trees (directories at any depth, files of any size with data islands and holes, symlinks
 * short and long, hard links, FIFOs, names of 1 to 255 bytes) made on the host, served as a bridged
 * image and read back by the real ext4 tools: {@code e2fsck -fn} is clean, and {@code debugfs rdump}
 * gives back every name, type, permission, owner, file content and symlink target.
 */
class BridgedImageProperties {

    /** One entry to make, in order: its kind, the index of its parent directory among those made, a name, a size, a seed. */
    record Make(int kind, int parent, String name, int size, long seed) {}

    @Provide
    Arbitrary<List<Make>> trees() {
        Arbitrary<String> names = Arbitraries.strings().withChars("abcdefghijklmnopqrstuvwxyz0123456789._-é").ofMinLength(1).ofMaxLength(200)
                .filter(s -> !s.equals(".") && !s.equals("..") && !s.equals("lost+found") && s.getBytes(StandardCharsets.UTF_8).length <= 255);
        Arbitrary<Make> make = Combinators.combine(Arbitraries.integers().between(0, 5), Arbitraries.integers().between(0, 40),
                names, Arbitraries.integers().between(0, 300_000), Arbitraries.longs()).as(Make::new);
        return make.list().ofMaxSize(60);
    }

    @Property(tries = 30)
    void anyTreeIsACleanImageThatReadsBackAsTheTree(@ForAll("trees") List<Make> plan) throws Exception {
        Path tmp = Files.createTempDirectory("bridged-prop");
        try {
            Path root = Files.createDirectories(tmp.resolve("tree"));
            build(root, plan);
            Path img = tmp.resolve("image");
            try (PageCache cache = new PageCache(8 << 20, CacheMode.WRITEBACK);
                 BridgedDisk disk = BridgedDisk.open(cache, root, "prop", Readahead.OFF)) {
                BridgedImageTest.copyImage(disk, img);
            }
            BridgedImageTest.run(tmp, "e2fsck", "-fn", img.toString());
            Path out = Files.createDirectories(tmp.resolve("out"));
            BridgedImageTest.run(tmp, "debugfs", "-R", "rdump / " + out, img.toString());
            Files.deleteIfExists(out.resolve("lost+found"));
            assertEquals(describe(root), describe(out));
        } finally {
            try (Stream<Path> s = Files.walk(tmp)) {
                s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static void build(Path root, List<Make> plan) throws IOException {
        List<Path> dirs = new ArrayList<>(List.of(root));
        List<Path> files = new ArrayList<>();
        for (Make m : plan) {
            Path p = dirs.get(m.parent() % dirs.size()).resolve(m.name());
            if (Files.exists(p, LinkOption.NOFOLLOW_LINKS)) continue;
            java.util.Random r = new java.util.Random(m.seed());
            switch (m.kind()) {
                case 0 -> dirs.add(Files.createDirectory(p));
                case 1, 2 -> {
                    try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
                        int islands = m.kind() == 2 ? 1 + r.nextInt(6) : 1;
                        long size = m.kind() == 2 ? m.size() * 40L : m.size();
                        for (int i = 0; i < islands && size > 0; i++) {
                            byte[] b = new byte[Math.min(m.size(), 1 + r.nextInt(20_000))];
                            r.nextBytes(b);
                            f.seek(islands == 1 ? 0 : (long) (r.nextDouble() * size));
                            f.write(b);
                        }
                        f.setLength(size);
                    }
                    files.add(p);
                }
                case 3 -> Files.createSymbolicLink(p, Path.of("t".repeat(1 + m.size() % 300)));
                case 4 -> {
                    if (!files.isEmpty()) Files.createLink(p, files.get(m.parent() % files.size()));
                }
                default -> Posix.mknodat(Posix.AT_FDCWD, p.toString(), Posix.S_IFIFO | 0640, 0);
            }
        }
    }

    /** What rdump restores of each entry: type, permissions, owner, and content or target. FIFOs it skips. */
    private static Map<String, String> describe(Path root) throws IOException {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                Map<String, Object> a = Files.readAttributes(p, "unix:mode,uid,gid,size", LinkOption.NOFOLLOW_LINKS);
                int mode = (Integer) a.get("mode");
                int type = mode & Posix.S_IFMT;
                if (type == Posix.S_IFIFO) continue;
                String what = type == Posix.S_IFLNK ? "-> " + Files.readSymbolicLink(p)
                        : type == Posix.S_IFREG ? a.get("size") + " " + java.util.Arrays.hashCode(Files.readAllBytes(p)) : "";
                String perm = type == Posix.S_IFLNK ? "" : Integer.toOctalString(mode & 0777);
                out.put(root.relativize(p).toString(), Integer.toOctalString(type) + " " + perm + " " + a.get("uid") + ":" + a.get("gid") + " " + what);
            }
        }
        return out;
    }
}
