package io.bridgefs.protocol.p9;

import io.netty.buffer.ByteBuf;
import java.util.List;

/**
 * Every 9P2000.L message, named as on the wire. The first component of each is the tag; the rest
 * follow the wire order, described for {@link P9Codec} by a schema (see there). Messages that carry
 * data own a reference-counted {@link ByteBuf} (release with {@code ReferenceCountUtil.release}).
 */
public interface P9Message {
    int tag();

    // ---- requests ----
    record Tversion(int tag, int msize, String version) implements P9Message {}
    record Tauth(int tag, int afid, String uname, String aname, int nuname) implements P9Message {}
    record Tattach(int tag, int fid, int afid, String uname, String aname, int nuname) implements P9Message {}
    record Tflush(int tag, int oldtag) implements P9Message {}
    record Twalk(int tag, int fid, int newfid, List<String> names) implements P9Message {}
    record Tread(int tag, int fid, long offset, int count) implements P9Message {}
    record Twrite(int tag, int fid, long offset, ByteBuf data) implements P9Message, Payload {}
    record Tclunk(int tag, int fid) implements P9Message {}
    record Tremove(int tag, int fid) implements P9Message {}
    record Tstatfs(int tag, int fid) implements P9Message {}
    record Tlopen(int tag, int fid, int flags) implements P9Message {}
    record Tlcreate(int tag, int fid, String name, int flags, int mode, int gid) implements P9Message {}
    record Tsymlink(int tag, int fid, String name, String target, int gid) implements P9Message {}
    record Tmknod(int tag, int dfid, String name, int mode, int major, int minor, int gid) implements P9Message {}
    record Trename(int tag, int fid, int dfid, String name) implements P9Message {}
    record Treadlink(int tag, int fid) implements P9Message {}
    record Tgetattr(int tag, int fid, long mask) implements P9Message {}
    record Tsetattr(int tag, int fid, int valid, int mode, int uid, int gid, long size,
                    long atimeSec, long atimeNsec, long mtimeSec, long mtimeNsec) implements P9Message {}
    record Txattrwalk(int tag, int fid, int newfid, String name) implements P9Message {}
    record Txattrcreate(int tag, int fid, String name, long size, int flags) implements P9Message {}
    record Treaddir(int tag, int fid, long offset, int count) implements P9Message {}
    record Tfsync(int tag, int fid, int datasync) implements P9Message {}
    record Tlock(int tag, int fid, int type, int flags, long start, long length, int procId, String clientId) implements P9Message {}
    record Tgetlock(int tag, int fid, int type, long start, long length, int procId, String clientId) implements P9Message {}
    record Tlink(int tag, int dfid, int fid, String name) implements P9Message {}
    record Tmkdir(int tag, int dfid, String name, int mode, int gid) implements P9Message {}
    record Trenameat(int tag, int olddirfid, String oldname, int newdirfid, String newname) implements P9Message {}
    record Tunlinkat(int tag, int dirfid, String name, int flags) implements P9Message {}

    // ---- replies ----
    record Rversion(int tag, int msize, String version) implements P9Message {}
    record Rauth(int tag, Qid aqid) implements P9Message {}
    record Rattach(int tag, Qid qid) implements P9Message {}
    record Rlerror(int tag, int ecode) implements P9Message {}
    record Rflush(int tag) implements P9Message {}
    record Rwalk(int tag, List<Qid> qids) implements P9Message {}
    record Rread(int tag, ByteBuf data) implements P9Message, Payload {}
    record Rwrite(int tag, int count) implements P9Message {}
    record Rclunk(int tag) implements P9Message {}
    record Rremove(int tag) implements P9Message {}
    record Rstatfs(int tag, int type, int bsize, long blocks, long bfree, long bavail, long files, long ffree,
                   long fsid, int namelen) implements P9Message {}
    record Rlopen(int tag, Qid qid, int iounit) implements P9Message {}
    record Rlcreate(int tag, Qid qid, int iounit) implements P9Message {}
    record Rsymlink(int tag, Qid qid) implements P9Message {}
    record Rmknod(int tag, Qid qid) implements P9Message {}
    record Rrename(int tag) implements P9Message {}
    record Rreadlink(int tag, String target) implements P9Message {}
    record Rgetattr(int tag, long valid, Qid qid, int mode, int uid, int gid, long nlink, long rdev, long size,
                    long blksize, long blocks, long atimeSec, long atimeNsec, long mtimeSec, long mtimeNsec,
                    long ctimeSec, long ctimeNsec, long btimeSec, long btimeNsec, long gen, long dataVersion) implements P9Message {}
    record Rsetattr(int tag) implements P9Message {}
    record Rxattrwalk(int tag, long size) implements P9Message {}
    record Rxattrcreate(int tag) implements P9Message {}
    record Rreaddir(int tag, ByteBuf data) implements P9Message, Payload {}
    record Rfsync(int tag) implements P9Message {}
    record Rlock(int tag, int status) implements P9Message {}
    record Rgetlock(int tag, int type, long start, long length, int procId, String clientId) implements P9Message {}
    record Rlink(int tag) implements P9Message {}
    record Rmkdir(int tag, Qid qid) implements P9Message {}
    record Rrenameat(int tag) implements P9Message {}
    record Runlinkat(int tag) implements P9Message {}

    // ---- what the decoder produces for input it cannot turn into a message ----
    /** A message type this server does not know (answered with Rlerror EOPNOTSUPP). */
    record Unknown(int tag, int type) implements P9Message {}
    /** A known type whose body did not parse (answered with Rlerror EPROTO). */
    record Malformed(int tag, int type, String reason) implements P9Message {}
    /** A frame whose declared size exceeded msize: skipped unread, answered with Rlerror EMSGSIZE. */
    record Oversized(int tag, int type, long size) implements P9Message {}

    /** Messages that own a data buffer. */
    interface Payload {
        ByteBuf data();

        default void release() {
            data().release();
        }
    }
}
