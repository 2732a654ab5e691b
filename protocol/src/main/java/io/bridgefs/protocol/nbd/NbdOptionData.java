package io.bridgefs.protocol.nbd;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The structured data of options NBD_OPT_INFO/GO and NBD_OPT_LIST/SET_META_CONTEXT.
 * Parsing checks every announced length against what is left before allocating anything, and
 * reports malformed data as {@link Malformed} (which the server answers with NBD_REP_ERR_INVALID).
 */
public final class NbdOptionData {
    private NbdOptionData() {}

    /** The option data did not have the form the spec requires. */
    public static final class Malformed extends Exception {
        public Malformed(String message) { super(message); }
    }

    /** NBD_OPT_INFO / NBD_OPT_GO: export name and the NBD_INFO_* items requested. */
    public record InfoRequest(String exportName, List<Integer> infos) {
        public byte[] encode() {
            byte[] n = exportName.getBytes(StandardCharsets.UTF_8);
            ByteBuffer b = ByteBuffer.allocate(4 + n.length + 2 + 2 * infos.size());
            b.putInt(n.length).put(n).putShort((short) infos.size());
            infos.forEach(i -> b.putShort((short) (int) i));
            return b.array();
        }
    }

    /** NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT: export name and queries. */
    public record MetaContextRequest(String exportName, List<String> queries) {
        public byte[] encode() {
            List<byte[]> qs = queries.stream().map(q -> q.getBytes(StandardCharsets.UTF_8)).toList();
            byte[] n = exportName.getBytes(StandardCharsets.UTF_8);
            int size = 4 + n.length + 4 + qs.stream().mapToInt(q -> 4 + q.length).sum();
            ByteBuffer b = ByteBuffer.allocate(size);
            b.putInt(n.length).put(n).putInt(qs.size());
            qs.forEach(q -> b.putInt(q.length).put(q));
            return b.array();
        }
    }

    public static InfoRequest parseInfo(byte[] data) throws Malformed {
        ByteBuffer b = ByteBuffer.wrap(data);
        try {
            String name = string(b);
            int n = Short.toUnsignedInt(b.getShort());
            if (b.remaining() != 2 * n) throw new Malformed("info request count " + n + " does not match " + b.remaining() + " bytes left");
            List<Integer> infos = new ArrayList<>(n);
            for (int i = 0; i < n; i++) infos.add(Short.toUnsignedInt(b.getShort()));
            return new InfoRequest(name, infos);
        } catch (BufferUnderflowException e) {
            throw new Malformed("info request truncated");
        }
    }

    public static MetaContextRequest parseMetaContext(byte[] data) throws Malformed {
        ByteBuffer b = ByteBuffer.wrap(data);
        try {
            String name = string(b);
            long n = Integer.toUnsignedLong(b.getInt());
            if (n * 4 > b.remaining()) throw new Malformed("meta context query count " + n + " exceeds data");
            List<String> queries = new ArrayList<>((int) n);
            for (long i = 0; i < n; i++) queries.add(string(b));
            if (b.hasRemaining()) throw new Malformed(b.remaining() + " trailing bytes after meta context queries");
            return new MetaContextRequest(name, queries);
        } catch (BufferUnderflowException e) {
            throw new Malformed("meta context request truncated");
        }
    }

    /** A 32-bit length followed by that many bytes of UTF-8, at most {@link NbdConstants#MAX_STRING}. */
    private static String string(ByteBuffer b) throws Malformed {
        long len = Integer.toUnsignedLong(b.getInt());
        if (len > NbdConstants.MAX_STRING) throw new Malformed("string of " + len + " bytes is longer than " + NbdConstants.MAX_STRING);
        if (len > b.remaining()) throw new Malformed("string of " + len + " bytes exceeds the option data");
        ByteBuffer slice = b.slice();
        slice.limit((int) len);
        b.position(b.position() + (int) len);
        return utf8(slice);
    }

    /** Strict UTF-8 decoding of an export name or description (NUL is not allowed in NBD strings). */
    public static String utf8(ByteBuffer bytes) throws Malformed {
        try {
            CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(bytes);
            String s = chars.toString();
            if (s.indexOf('\0') >= 0) throw new Malformed("string contains NUL");
            return s;
        } catch (CharacterCodingException e) {
            throw new Malformed("string is not valid UTF-8");
        }
    }
}
