package io.bridgefs.server.p9;

import static io.bridgefs.protocol.p9.P9Message.*;
import static org.junit.jupiter.api.Assertions.*;

import com.codahale.metrics.MetricRegistry;
import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.metrics.IoMetrics;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.Executors;
import net.jqwik.api.*;
import net.jqwik.api.lifecycle.AfterProperty;
import net.jqwik.api.lifecycle.AfterTry;
import net.jqwik.api.state.Action;
import net.jqwik.api.state.ActionChain;
import net.jqwik.api.state.Transformer;

/**
 * Model-based test of the 9P operations over a real host directory: random walks, creates, writes,
 * reads, readdirs with random counts, renames, unlinks, mkdirs, chown/chmod and fid reuse, each checked
 * against an in-memory tree (directories, file contents, and the owner and mode each entry shows),
 * under security=none and security=mapped (where the host must keep plain 0600/0700 entries whatever
 * the client sets).
 */
class P9SessionModelProperties {
    static final PageCache CACHE = new PageCache(1 << 20, CacheMode.WRITEBACK);
    static final List<String> NAMES = List.of("a", "b", "c", "d", "e");
    static final List<String> DIRS = List.of("", "x", "y");
    /** Worlds of the current try (shrinking runs several): closed and deleted after it. */
    static final List<World> WORLDS = Collections.synchronizedList(new ArrayList<>());

    static final class World {
        final Path root;
        final P9Ops ops;
        final Map<String, byte[]> files = new TreeMap<>();    // "dir/name" -> content ("" dir = root)
        final Set<String> dirs = new TreeSet<>(Set.of(""));
        /** What the client must see of each entry: {mode with type, uid, gid}. */
        final Map<String, int[]> attrs = new TreeMap<>();
        final boolean mapped;
        final java.util.concurrent.ExecutorService executor;
        int tag = 1;

        /** The connection ends (its fids and descriptors released) and the host directory goes. */
        void close() throws IOException {
            ops.close();
            executor.shutdownNow();
            try (var s = Files.walk(root)) {
                for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
            }
        }

        World(boolean mapped) {
            this.mapped = mapped;
            try {
                root = Files.createTempDirectory("p9model");
            } catch (IOException e) {
                throw new AssertionError(e);
            }
            IoMetrics metrics = new IoMetrics(new MetricRegistry(), "9p", "m-" + System.nanoTime());
            P9Export e = new P9Export("m", root, false, -1, -1, false, metrics,
                    mapped ? io.bridgefs.server.config.P9Security.MAPPED : io.bridgefs.server.config.P9Security.NONE, false, List.of());
            // a budget of 3 descriptors: fids are reclaimed and reopened all the time
            executor = Executors.newSingleThreadExecutor();
            P9ServerContext ctx = new P9ServerContext(List.of(e), executor, CACHE, 1 << 20, 8).withDescriptorBudget(3);
            ops = new P9Ops(ctx, this);
            WORLDS.add(this);
            ops.msize = 65536;
            call(new Tattach(tag++, 0, P9.NOFID, "", "m", 0));
        }

        Object call(io.bridgefs.protocol.p9.P9Message m) {
            try {
                return ops.handle(m, ByteBufAllocator.DEFAULT);
            } catch (P9Error e) {
                return new Rlerror(m.tag(), e.errno);
            } catch (IOException e) {
                return new Rlerror(m.tag(), P9Error.from(e).errno);
            }
        }

        <T> T ok(io.bridgefs.protocol.p9.P9Message m, Class<T> c) {
            Object r = call(m);
            if (r instanceof Rlerror e) fail(m + " failed with errno " + e.ecode());
            return c.cast(r);
        }

        static List<String> split(String path) {
            List<String> l = new ArrayList<>();
            for (String s : path.split("/")) if (!s.isEmpty()) l.add(s);
            return l;
        }

        /** Walks fid 0 (the root) to a path as fid {@code fid}; returns the errno or 0. */
        int walk(int fid, String path) {
            Object r = call(new Twalk(tag++, 0, fid, split(path)));
            if (r instanceof Rlerror e) return e.ecode();
            Rwalk w = (Rwalk) r;
            if (w.qids().size() != split(path).size()) return P9.ENOENT;
            return 0;
        }

        void clunk(int fid) {
            ok(new Tclunk(tag++, fid), Rclunk.class);
        }

        byte[] readFile(int fid, int chunk) {
            java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
            long off = 0;
            while (true) {
                ByteBuf r = (ByteBuf) call(new Tread(tag++, fid, off, chunk));
                r.skipBytes(7);
                int n = r.readIntLE();
                byte[] a = new byte[n];
                r.readBytes(a);
                r.release();
                if (n == 0) return b.toByteArray();
                b.writeBytes(a);
                off += n;
            }
        }

        Set<String> readdir(int fid, int count) {
            Set<String> names = new TreeSet<>();
            long off = 0;
            while (true) {
                Object o = call(new Treaddir(tag++, fid, off, count));
                if (o instanceof Rlerror e) fail("readdir errno " + e.ecode());
                ByteBuf r = (ByteBuf) o;
                r.skipBytes(7);
                int len = r.readIntLE();
                if (len == 0) {
                    r.release();
                    return names;
                }
                int end = r.readerIndex() + len;
                while (r.readerIndex() < end) {
                    r.skipBytes(Qid.SIZE);
                    off = r.readLongLE();
                    r.readByte();
                    int n = r.readUnsignedShortLE();
                    String name = r.toString(r.readerIndex(), n, StandardCharsets.UTF_8);
                    r.skipBytes(n);
                    assertTrue(names.add(name), "entry repeated: " + name);
                }
                r.release();
            }
        }

        Set<String> modelNames(String dir) {
            Set<String> s = new TreeSet<>(List.of(".", ".."));
            String prefix = dir.isEmpty() ? "" : dir + "/";
            for (String f : files.keySet()) if (f.startsWith(prefix) && !f.substring(prefix.length()).contains("/")) s.add(f.substring(prefix.length()));
            for (String d : dirs) if (!d.isEmpty() && d.startsWith(prefix) && !d.substring(prefix.length()).contains("/")) s.add(d.substring(prefix.length()));
            return s;
        }

        /** Every entry shows the owner and mode the client set; under mapped the host keeps 0600/0700. */
        void checkAttrs() {
            for (var a : attrs.entrySet()) {
                assertEquals(0, walk(3, a.getKey()));
                Rgetattr g = ok(new Tgetattr(tag++, 3, P9.GETATTR_BASIC), Rgetattr.class);
                clunk(3);
                assertEquals(Integer.toOctalString(a.getValue()[0]), Integer.toOctalString(g.mode()), a.getKey() + " mode");
                assertEquals(a.getValue()[1], g.uid(), a.getKey() + " uid");
                assertEquals(a.getValue()[2], g.gid(), a.getKey() + " gid");
                if (mapped) {
                    try {
                        int host = (Integer) Files.getAttribute(root.resolve(a.getKey()), "unix:mode", java.nio.file.LinkOption.NOFOLLOW_LINKS);
                        assertEquals(dirs.contains(a.getKey()) ? 040700 : 0100600, host, a.getKey() + " on the host");
                    } catch (IOException x) {
                        throw new AssertionError(x);
                    }
                }
            }
        }

        @Override
        public String toString() { return "World(" + (mapped ? "mapped " : "none ") + files.keySet() + " " + dirs + ")"; }
    }

    static String join(String dir, String name) { return dir.isEmpty() ? name : dir + "/" + name; }

    @AfterTry
    void closeWorlds() throws IOException {
        synchronized (WORLDS) {
            for (World w : WORLDS) w.close();
            WORLDS.clear();
        }
    }

    @Property(tries = 40)
    void operationsMatchTheModel(@ForAll("chains") ActionChain<World> chain) {
        check(chain);
    }

    @Property(tries = 30)
    void mappedOperationsMatchTheModel(@ForAll("mappedChains") ActionChain<World> chain) {
        check(chain);
    }

    static void check(ActionChain<World> chain) {
        chain.withInvariant(w -> {
            for (var e : w.files.entrySet()) {
                try {
                    // what the clients wrote is what a host reader sees once it is written back
                    assertTrue(Files.exists(w.root.resolve(e.getKey())), e.getKey() + " exists on the host");
                } catch (AssertionError a) {
                    throw a;
                }
            }
        }).run();
    }

    @Provide
    Arbitrary<ActionChain<World>> chains() {
        return chains(false);
    }

    @Provide
    Arbitrary<ActionChain<World>> mappedChains() {
        return chains(true);
    }

    static Arbitrary<ActionChain<World>> chains(boolean mapped) {
        return ActionChain.startWith(() -> new World(mapped))
                .withAction(2, new SetAttrs())
                .withAction(3, new Create())
                .withAction(3, new Read())
                .withAction(2, new Write())
                .withAction(2, new Readdir())
                .withAction(1, new Rename())
                .withAction(1, new Unlink())
                .withAction(1, new Mkdir())
                .withMaxTransformations(25);
    }

    static Arbitrary<String> dir() { return Arbitraries.of(DIRS); }
    static Arbitrary<String> name() { return Arbitraries.of(NAMES); }
    static Arbitrary<Integer> fid() { return Arbitraries.integers().between(1, 3); }

    static class Create implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(dir(), name(), fid(), Arbitraries.bytes().array(byte[].class).ofMaxSize(20000))
                    .as((d, n, fid, data) -> Transformer.mutate("create " + join(d, n) + " (" + data.length + " bytes)", w -> {
                        int err = w.walk(fid, d);
                        if (!w.dirs.contains(d)) {
                            assertNotEquals(0, err);
                            return;
                        }
                        assertEquals(0, err);
                        String p = join(d, n);
                        Object r = w.call(new Tlcreate(w.tag++, fid, n, P9.O_RDWR | P9.O_EXCL, 0644, 0));
                        if (w.files.containsKey(p) || w.dirs.contains(p)) {
                            assertEquals(new Rlerror(r instanceof Rlerror e ? e.tag() : -1, P9.EEXIST), r);
                            w.clunk(fid);
                            return;
                        }
                        assertInstanceOf(Rlcreate.class, r);
                        if (data.length > 0) w.ok(new Twrite(w.tag++, fid, 0, Unpooled.wrappedBuffer(data)), Rwrite.class);
                        w.clunk(fid);
                        w.files.put(p, data);
                        // under none the host decides the group: in a setgid directory (root's chown to 0:0
                        // is skipped) the file takes the directory's, as a Linux client would also ask
                        int[] parent = w.attrs.get(d);
                        int gid = !w.mapped && parent != null && (parent[0] & 02000) != 0 ? parent[2] : 0;
                        w.attrs.put(p, new int[] {0100644, 0, gid});
                    }));
        }
    }

    static class Read implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(dir(), name(), fid(), Arbitraries.integers().between(1, 70000))
                    .as((d, n, fid, chunk) -> Transformer.mutate("read " + join(d, n) + " in " + chunk + "-byte reads", w -> {
                        String p = join(d, n);
                        int err = w.walk(fid, p);
                        if (!w.files.containsKey(p) && !w.dirs.contains(p)) {
                            assertNotEquals(0, err);
                            return;
                        }
                        assertEquals(0, err);
                        if (w.dirs.contains(p)) {
                            w.clunk(fid);
                            return;
                        }
                        w.ok(new Tlopen(w.tag++, fid, P9.O_RDONLY), Rlopen.class);
                        assertArrayEquals(w.files.get(p), w.readFile(fid, chunk));
                        w.clunk(fid);
                    }));
        }
    }

    static class Write implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(dir(), name(), Arbitraries.integers().between(0, 30000), Arbitraries.bytes().array(byte[].class).ofMinSize(1).ofMaxSize(9000))
                    .as((d, n, off, data) -> Transformer.mutate("write " + join(d, n) + " @" + off + " +" + data.length, w -> {
                        String p = join(d, n);
                        if (!w.files.containsKey(p)) return;
                        assertEquals(0, w.walk(3, p));
                        w.ok(new Tlopen(w.tag++, 3, P9.O_RDWR), Rlopen.class);
                        Qid before = w.ok(new Tgetattr(w.tag++, 3, P9.GETATTR_BASIC), Rgetattr.class).qid();
                        w.ok(new Twrite(w.tag++, 3, off, Unpooled.wrappedBuffer(data)), Rwrite.class);
                        Qid after = w.ok(new Tgetattr(w.tag++, 3, P9.GETATTR_BASIC), Rgetattr.class).qid();
                        assertNotEquals(before.version(), after.version(), "qid.version changes when the data changes");
                        w.clunk(3);
                        byte[] old = w.files.get(p);
                        byte[] now = Arrays.copyOf(old, Math.max(old.length, off + data.length));
                        System.arraycopy(data, 0, now, off, data.length);
                        w.files.put(p, now);
                    }));
        }
    }

    static class Readdir implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(dir(), Arbitraries.integers().between(40, 400))
                    .as((d, count) -> Transformer.mutate("readdir " + (d.isEmpty() ? "/" : d) + " count " + count, w -> {
                        if (!w.dirs.contains(d)) return;
                        assertEquals(0, w.walk(2, d));
                        w.ok(new Tlopen(w.tag++, 2, P9.O_RDONLY), Rlopen.class);
                        assertEquals(w.modelNames(d), w.readdir(2, count));
                        w.clunk(2);
                    }));
        }
    }

    static class Rename implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(dir(), name(), dir(), name()).as((d1, n1, d2, n2) -> Transformer.mutate(
                    "rename " + join(d1, n1) + " -> " + join(d2, n2), w -> {
                        String from = join(d1, n1), to = join(d2, n2);
                        if (!w.files.containsKey(from) || !w.dirs.contains(d2) || w.dirs.contains(to)) return;
                        assertEquals(0, w.walk(1, d1));
                        assertEquals(0, w.walk(2, d2));
                        w.ok(new Trenameat(w.tag++, 1, n1, 2, n2), Rrenameat.class);
                        w.clunk(1);
                        w.clunk(2);
                        byte[] c = w.files.remove(from);
                        w.files.put(to, c);
                        w.attrs.put(to, w.attrs.remove(from));
                    }));
        }
    }

    static class Unlink implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(dir(), name()).as((d, n) -> Transformer.mutate("unlink " + join(d, n), w -> {
                String p = join(d, n);
                if (!w.dirs.contains(d)) return;
                assertEquals(0, w.walk(1, d));
                Object r = w.call(new Tunlinkat(w.tag++, 1, n, 0));
                w.clunk(1);
                w.attrs.remove(p);
                if (w.files.remove(p) == null) assertInstanceOf(Rlerror.class, r);
                else assertInstanceOf(Runlinkat.class, r);
            }));
        }
    }

    static class Mkdir implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            return Arbitraries.of("x", "y").map(d -> Transformer.mutate("mkdir " + d, w -> {
                Object r = w.call(new Tmkdir(w.tag++, 0, d, 0755, 0));
                if (w.dirs.contains(d) || w.files.containsKey(d)) assertInstanceOf(Rlerror.class, r);
                else {
                    assertInstanceOf(Rmkdir.class, r);
                    w.dirs.add(d);
                    w.attrs.put(d, new int[] {040755, 0, 0});
                }
            }));
        }
    }

    /** chown, then chmod (two requests, so a host's chown clearing setuid cannot come after the chmod). */
    static class SetAttrs implements Action.Independent<World> {
        public Arbitrary<Transformer<World>> transformer() {
            Arbitrary<Integer> ids = Arbitraries.of(0, 1000, 65534);
            return Combinators.combine(Arbitraries.of("x", "y", "a", "b", "x/a", "y/b"), Arbitraries.integers().between(0, 07777), ids, ids)
                    .as((p, mode, uid, gid) -> Transformer.mutate("chown " + uid + ":" + gid + " chmod " + Integer.toOctalString(mode) + " " + p, w -> {
                        int[] a = w.attrs.get(p);
                        if (a == null) return;
                        assertEquals(0, w.walk(3, p));
                        w.ok(new Tsetattr(w.tag++, 3, P9.SETATTR_UID | P9.SETATTR_GID, 0, uid, gid, 0, 0, 0, 0, 0), Rsetattr.class);
                        w.ok(new Tsetattr(w.tag++, 3, P9.SETATTR_MODE, mode, 0, 0, 0, 0, 0, 0, 0), Rsetattr.class);
                        w.clunk(3);
                        w.attrs.put(p, new int[] {(a[0] & 0170000) | mode, uid, gid});
                        w.checkAttrs();
                    }));
        }
    }
}
