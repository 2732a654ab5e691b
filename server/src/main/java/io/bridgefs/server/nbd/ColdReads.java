package io.bridgefs.server.nbd;

import io.bridgefs.protocol.nbd.NbdRequest;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.cache.PinnedRange;
import io.bridgefs.server.cache.ReadBatch;
import io.netty.channel.ChannelHandlerContext;
import io.netty.util.ReferenceCountUtil;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A connection's small reads that missed the cache, gathered over one turn of its event loop (a
 * client with many requests queued sends them in one go) and read together on the executor by one
 * {@link ReadBatch}: one system call and one disk doorbell for the lot, one hand-off to the executor
 * and one back per round of completions, instead of one each per request. A lone miss, and any read
 * the batch cannot plan, is read the usual way.
 */
final class ColdReads {
    static final int MAX_BATCH = 32;
    static final int MAX_LENGTH = 64 << 10;
    private final NbdSession session;
    private final NbdExport export;
    private List<Cold> pending;       // event-loop confined

    private record Cold(NbdRequest req, long cost) {}

    ColdReads(NbdSession session, NbdExport export) {
        this.session = session;
        this.export = export;
    }

    /** Whether {@code req} (a request the fast path could not answer) is read in a batch. */
    boolean wants(NbdRequest req) {
        return req instanceof NbdRequest.Read && req.length() > 0 && req.length() <= MAX_LENGTH
                && export.bridged() == null && ReadBatch.possible(export.file());
    }

    /** On the event loop: {@code req} joins this turn's batch, which goes to the executor when the turn ends. */
    void queue(ChannelHandlerContext ctx, NbdRequest req, long cost) {
        boolean first = pending == null;
        if (first) pending = new ArrayList<>();
        pending.add(new Cold(req, cost));
        if (first) {
            try {
                ctx.channel().eventLoop().execute(() -> flush(ctx));     // runs after this turn's reads
            } catch (java.util.concurrent.RejectedExecutionException e) {
                flush(ctx);                                             // the loop is stopping: now
            }
        }
        if (pending != null && pending.size() == MAX_BATCH) flush(ctx);
    }

    private void flush(ChannelHandlerContext ctx) {
        List<Cold> batch = pending;
        pending = null;
        if (batch == null) return;
        Cold one = batch.get(0);
        Runnable task = batch.size() == 1 ? () -> session.run(ctx, one.req(), one.cost()) : () -> read(ctx, batch);
        if (!session.submit(task)) for (Cold c : batch) session.refuse(ctx, c.req(), c.cost());
    }

    /** On the executor: reads the batch and answers every request in it. */
    private void read(ChannelHandlerContext ctx, List<Cold> batch) {
        var file = export.file();
        ReadBatch reads = ReadBatch.open(file);
        if (reads == null) {                      // native AIO just turned out missing: the usual way
            for (Cold c : batch) session.run(ctx, c.req(), c.cost());
            return;
        }
        var m = export.metrics();
        long t0 = System.nanoTime();
        boolean[] planned = new boolean[batch.size()];
        List<Sent> ready = new ArrayList<>();
        try (reads) {
            try {
                for (int i = 0; i < batch.size(); i++) {
                    NbdRequest req = batch.get(i).req();
                    planned[i] = reads.add(i, file, IoPath.NBD, req.offset(), (int) req.length());
                }
            } finally {
                usual(ctx, batch, planned);
            }
            reads.run(new ReadBatch.Done() {
                @Override
                public void done(int i, PinnedRange pinned, IOException error) {
                    NbdRequest req = batch.get(i).req();
                    NbdSession.Outcome out;
                    if (error != null) {
                        out = session.failed(ctx, req, error);
                    } else {
                        try {
                            out = session.zeroCopyReply(ctx, req, pinned);
                            m.readBytes.inc(req.length());
                            m.batchedReads.inc();
                            m.read.update(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
                        } catch (RuntimeException | Error e) {
                            pinned.release();
                            out = session.failed(ctx, req, e);
                        }
                    }
                    ready.add(new Sent(out, batch.get(i).cost()));
                }

                @Override
                public void round() {
                    hand(ctx, ready);
                }
            });
        } catch (IOException | RuntimeException | Error e) {
            // the batch has given back what it held; whoever it did not answer is answered here
            for (int i = 0; i < batch.size(); i++) {
                if (planned[i] && !reads.answered(i)) ready.add(new Sent(session.failed(ctx, batch.get(i).req(), e), batch.get(i).cost()));
            }
            hand(ctx, ready);
        } finally {
            for (int i = 0; i < batch.size(); i++) if (planned[i]) ReferenceCountUtil.release(batch.get(i).req());
        }
    }

    /**
     * The requests the batch could not plan, each to the executor on its own: not after the batch's
     * reads, and never on this thread (one may wait for a page the batch fills).
     */
    private void usual(ChannelHandlerContext ctx, List<Cold> batch, boolean[] planned) {
        for (int i = 0; i < batch.size(); i++) if (!planned[i]) session.runOnExecutor(ctx, batch.get(i).req(), batch.get(i).cost());
    }

    /** A reply made on the executor, and the cost its request holds until it is written. */
    private record Sent(NbdSession.Outcome out, long cost) {}

    /** Sends the replies made so far with one hand-off to the event loop and one flush. */
    private void hand(ChannelHandlerContext ctx, List<Sent> ready) {
        if (ready.isEmpty()) return;
        List<Sent> sent = new ArrayList<>(ready);
        ready.clear();
        ctx.channel().eventLoop().execute(() -> {
            session.batch.during(() -> {
                for (Sent s : sent) session.send(ctx, s.cost(), s.out());
            });
            session.batch.readComplete(ctx);
        });
    }
}
