package io.bridgefs.protocol.p9;

import io.netty.buffer.ByteBuf;
import java.lang.reflect.Constructor;
import java.lang.reflect.RecordComponent;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Encodes and decodes 9P2000.L message bodies from one table: each type number maps to its record and
 * a schema naming the wire field of each record component after the tag:
 * {@code b} u8, {@code h} u16, {@code i} u32, {@code l} u64, {@code s} string (u16 length + UTF-8),
 * {@code Q} qid, {@code S} u16 count of strings, {@code q} u16 count of qids, {@code D} u32 count of data
 * bytes (a {@link ByteBuf}). Every length is checked against what is left of the frame before anything
 * is read or allocated; a short or over-long body is a {@link Malformed} error, never an exception leak.
 */
public final class P9Codec {
    private P9Codec() {}

    /** The body did not match the schema of its type. */
    public static final class Malformed extends Exception {
        public Malformed(String message) { super(message); }
    }

    private record Spec(int type, Class<? extends P9Message> cls, String schema, Constructor<?> ctor, RecordComponent[] comps) {}

    private static final Map<Integer, Spec> BY_TYPE = new HashMap<>();
    private static final Map<Class<?>, Spec> BY_CLASS = new HashMap<>();

    static {
        add(100, P9Message.Tversion.class, "is");
        add(101, P9Message.Rversion.class, "is");
        add(102, P9Message.Tauth.class, "issi");
        add(103, P9Message.Rauth.class, "Q");
        add(104, P9Message.Tattach.class, "iissi");
        add(105, P9Message.Rattach.class, "Q");
        add(7, P9Message.Rlerror.class, "i");
        add(108, P9Message.Tflush.class, "h");
        add(109, P9Message.Rflush.class, "");
        add(110, P9Message.Twalk.class, "iiS");
        add(111, P9Message.Rwalk.class, "q");
        add(116, P9Message.Tread.class, "ili");
        add(117, P9Message.Rread.class, "D");
        add(118, P9Message.Twrite.class, "ilD");
        add(119, P9Message.Rwrite.class, "i");
        add(120, P9Message.Tclunk.class, "i");
        add(121, P9Message.Rclunk.class, "");
        add(122, P9Message.Tremove.class, "i");
        add(123, P9Message.Rremove.class, "");
        add(8, P9Message.Tstatfs.class, "i");
        add(9, P9Message.Rstatfs.class, "iilllllli");
        add(12, P9Message.Tlopen.class, "ii");
        add(13, P9Message.Rlopen.class, "Qi");
        add(14, P9Message.Tlcreate.class, "isiii");
        add(15, P9Message.Rlcreate.class, "Qi");
        add(16, P9Message.Tsymlink.class, "issi");
        add(17, P9Message.Rsymlink.class, "Q");
        add(18, P9Message.Tmknod.class, "isiiii");
        add(19, P9Message.Rmknod.class, "Q");
        add(20, P9Message.Trename.class, "iis");
        add(21, P9Message.Rrename.class, "");
        add(22, P9Message.Treadlink.class, "i");
        add(23, P9Message.Rreadlink.class, "s");
        add(24, P9Message.Tgetattr.class, "il");
        add(25, P9Message.Rgetattr.class, "lQiiilllllllllllllll");
        add(26, P9Message.Tsetattr.class, "iiiiilllll");
        add(27, P9Message.Rsetattr.class, "");
        add(30, P9Message.Txattrwalk.class, "iis");
        add(31, P9Message.Rxattrwalk.class, "l");
        add(32, P9Message.Txattrcreate.class, "isli");
        add(33, P9Message.Rxattrcreate.class, "");
        add(40, P9Message.Treaddir.class, "ili");
        add(41, P9Message.Rreaddir.class, "D");
        add(50, P9Message.Tfsync.class, "ii");
        add(51, P9Message.Rfsync.class, "");
        add(52, P9Message.Tlock.class, "ibillis");
        add(53, P9Message.Rlock.class, "b");
        add(54, P9Message.Tgetlock.class, "ibllis");
        add(55, P9Message.Rgetlock.class, "bllis");
        add(70, P9Message.Tlink.class, "iis");
        add(71, P9Message.Rlink.class, "");
        add(72, P9Message.Tmkdir.class, "isii");
        add(73, P9Message.Rmkdir.class, "Q");
        add(74, P9Message.Trenameat.class, "isis");
        add(75, P9Message.Rrenameat.class, "");
        add(76, P9Message.Tunlinkat.class, "isi");
        add(77, P9Message.Runlinkat.class, "");
    }

    private static void add(int type, Class<? extends P9Message> cls, String schema) {
        RecordComponent[] comps = cls.getRecordComponents();
        if (comps.length != schema.length() + 1) throw new IllegalStateException(cls + " does not match schema " + schema);
        Class<?>[] types = new Class<?>[comps.length];
        for (int i = 0; i < comps.length; i++) types[i] = comps[i].getType();
        try {
            Spec s = new Spec(type, cls, schema, cls.getDeclaredConstructor(types), comps);
            BY_TYPE.put(type, s);
            BY_CLASS.put(cls, s);
        } catch (NoSuchMethodException e) {
            throw new IllegalStateException(e);
        }
    }

    public static boolean known(int type) { return BY_TYPE.containsKey(type); }

    /** Type numbers of every message (for tests). */
    static List<Integer> types() { return new ArrayList<>(new java.util.TreeSet<>(BY_TYPE.keySet())); }

    static String schemaOf(int type) { return BY_TYPE.get(type).schema; }

    static P9Message construct(int type, Object[] args) throws ReflectiveOperationException {
        return (P9Message) BY_TYPE.get(type).ctor.newInstance(args);
    }

    public static int typeOf(P9Message m) {
        Spec s = BY_CLASS.get(m.getClass());
        if (s == null) throw new IllegalArgumentException("not a wire message: " + m);
        return s.type;
    }

    /** Writes a whole frame: size[4] type[1] tag[2] body. Payload buffers are copied, not released. */
    public static void encode(P9Message m, ByteBuf out) {
        Spec s = BY_CLASS.get(m.getClass());
        if (s == null) throw new IllegalArgumentException("not a wire message: " + m);
        int start = out.writerIndex();
        out.writeIntLE(0);
        out.writeByte(s.type);
        out.writeShortLE(m.tag());
        try {
            for (int i = 0; i < s.schema.length(); i++) write(out, s.schema.charAt(i), s.comps[i + 1].getAccessor().invoke(m));
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
        out.setIntLE(start, out.writerIndex() - start);
    }

    @SuppressWarnings("unchecked")
    private static void write(ByteBuf out, char kind, Object v) {
        switch (kind) {
            case 'b' -> out.writeByte((Integer) v);
            case 'h' -> out.writeShortLE((Integer) v);
            case 'i' -> out.writeIntLE((Integer) v);
            case 'l' -> out.writeLongLE((Long) v);
            case 's' -> writeString(out, (String) v);
            case 'Q' -> writeQid(out, (Qid) v);
            case 'S' -> {
                List<String> l = (List<String>) v;
                out.writeShortLE(l.size());
                l.forEach(x -> writeString(out, x));
            }
            case 'q' -> {
                List<Qid> l = (List<Qid>) v;
                out.writeShortLE(l.size());
                l.forEach(x -> writeQid(out, x));
            }
            case 'D' -> {
                ByteBuf d = (ByteBuf) v;
                out.writeIntLE(d.readableBytes());
                out.writeBytes(d, d.readerIndex(), d.readableBytes());
            }
            default -> throw new IllegalStateException("schema " + kind);
        }
    }

    public static void writeString(ByteBuf out, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length > 0xFFFF) throw new IllegalArgumentException("string longer than 65535 bytes");
        out.writeShortLE(b.length);
        out.writeBytes(b);
    }

    public static void writeQid(ByteBuf out, Qid q) {
        out.writeByte(q.type());
        out.writeIntLE(q.version());
        out.writeLongLE(q.path());
    }

    /**
     * Decodes the body of a message of {@code type} (the frame header already read) from exactly the
     * readable bytes of {@code body}. A data payload becomes a retained slice of {@code body}.
     */
    public static P9Message decode(int type, int tag, ByteBuf body) throws Malformed {
        Spec s = BY_TYPE.get(type);
        if (s == null) return new P9Message.Unknown(tag, type);
        Object[] args = new Object[s.schema.length() + 1];
        args[0] = tag;
        ByteBuf data = null;
        try {
            for (int i = 0; i < s.schema.length(); i++) {
                char k = s.schema.charAt(i);
                args[i + 1] = read(body, k);
                if (k == 'D') data = (ByteBuf) args[i + 1];
            }
            if (body.isReadable()) throw new Malformed(body.readableBytes() + " bytes after the last field of type " + type);
            return (P9Message) s.ctor.newInstance(args);
        } catch (Malformed e) {
            if (data != null) data.release();
            throw e;
        } catch (ReflectiveOperationException e) {
            if (data != null) data.release();
            throw new IllegalStateException(e);
        }
    }

    private static Object read(ByteBuf in, char kind) throws Malformed {
        switch (kind) {
            case 'b': need(in, 1); return (int) in.readUnsignedByte();
            case 'h': need(in, 2); return in.readUnsignedShortLE();
            case 'i': need(in, 4); return in.readIntLE();
            case 'l': need(in, 8); return in.readLongLE();
            case 's': return readString(in);
            case 'Q': return readQid(in);
            case 'S': {
                need(in, 2);
                int n = in.readUnsignedShortLE();
                if (n * 2L > in.readableBytes()) throw new Malformed(n + " names cannot fit in " + in.readableBytes() + " bytes");
                List<String> l = new ArrayList<>(n);
                for (int i = 0; i < n; i++) l.add(readString(in));
                return l;
            }
            case 'q': {
                need(in, 2);
                int n = in.readUnsignedShortLE();
                if ((long) n * Qid.SIZE > in.readableBytes()) throw new Malformed(n + " qids cannot fit in " + in.readableBytes() + " bytes");
                List<Qid> l = new ArrayList<>(n);
                for (int i = 0; i < n; i++) l.add(readQid(in));
                return l;
            }
            case 'D': {
                need(in, 4);
                long n = in.readUnsignedIntLE();
                if (n > in.readableBytes()) throw new Malformed("data count " + n + " exceeds the frame (" + in.readableBytes() + " bytes left)");
                return in.readRetainedSlice((int) n);
            }
            default: throw new IllegalStateException("schema " + kind);
        }
    }

    private static void need(ByteBuf in, int n) throws Malformed {
        if (in.readableBytes() < n) throw new Malformed("body truncated");
    }

    public static String readString(ByteBuf in) throws Malformed {
        need(in, 2);
        int n = in.readUnsignedShortLE();
        need(in, n);
        String s = in.toString(in.readerIndex(), n, StandardCharsets.UTF_8);
        in.skipBytes(n);
        return s;
    }

    public static Qid readQid(ByteBuf in) throws Malformed {
        need(in, Qid.SIZE);
        return new Qid(in.readUnsignedByte(), in.readIntLE(), in.readLongLE());
    }
}
