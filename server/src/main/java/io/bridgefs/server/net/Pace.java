package io.bridgefs.server.net;

import java.util.concurrent.TimeUnit;

/**
 * The rule the {@link ConnectionGuard} applies at each look at a connection: whether it moves fast
 * enough to give back the request memory it holds. A large frame left unfinished for
 * {@code --stall-timeout} is cut off whatever else happens. While others wait for request memory the
 * guard looks ahead: a connection is cut off if, at the pace it kept since the last look, it would not
 * finish its large frame within {@code --stall-timeout} of the frame's start, or would not take the
 * replies it had queued at the last look within {@code --stall-timeout}. A client that sends or takes
 * nothing is the extreme case; one that keeps just moving (a byte per look) is the case this closes.
 * Pure, so that it can be tried without a network.
 */
final class Pace {
    private Pace() {}

    /** What the guard saw of one connection over one look (bytes are counted at the guard: plaintext under TLS). */
    record Look(
            long elapsedNanos,      // since the previous look
            boolean othersWait,     // someone waits for request memory, or was refused some lately
            long frameAgeNanos,     // how long the large frame being read has been unfinished, or -1
            long frameLeft,         // bytes of it still to come (as far as the guard can tell)
            long read,              // bytes read from the client since the previous look
            boolean holdsMemory,
            long queuedBefore,      // bytes of replies not yet taken at the previous look
            long taken) {}          // bytes of replies the client took (acknowledged) since the previous look

    /** Why the connection must be closed, or null. */
    static String verdict(Look l, long stallNanos) {
        if (l.frameAgeNanos() >= stallNanos) {
            return "left a large request unfinished for " + TimeUnit.NANOSECONDS.toSeconds(l.frameAgeNanos()) + " s (--stall-timeout)";
        }
        if (!l.othersWait()) return null;
        // the frame was unfinished over the whole look, so what was read in it was the frame's
        if (l.frameAgeNanos() >= l.elapsedNanos() && l.frameLeft() > 0) {
            if (l.read() == 0) return "sent nothing of a large request for " + over(l) + " while others waited for request memory";
            double finish = l.frameAgeNanos() + (double) l.frameLeft() * l.elapsedNanos() / l.read();
            if (finish > stallNanos) {
                return "sent " + l.read() + " bytes of a large request in " + over(l) + " while others waited for request memory; at that pace its other "
                        + l.frameLeft() + " bytes would come after --stall-timeout";
            }
        }
        if (l.holdsMemory() && l.queuedBefore() > 0 && (double) l.taken() * stallNanos < (double) l.queuedBefore() * l.elapsedNanos()) {
            if (l.taken() <= 0) return "took none of its replies for " + over(l) + " while others waited for request memory";
            return "took " + l.taken() + " of its " + l.queuedBefore() + " bytes of queued replies in " + over(l)
                    + " while others waited for request memory; at that pace the rest would take longer than --stall-timeout";
        }
        return null;
    }

    /** The look's length, for a reason given (formatted only then: most looks close nothing). */
    private static String over(Look l) {
        return String.format("%.0f s", l.elapsedNanos() / 1e9);
    }
}
