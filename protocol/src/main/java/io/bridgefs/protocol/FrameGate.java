package io.bridgefs.protocol;

/**
 * Asked by a decoder before it accumulates a large frame (over {@link #MIN_GATED} bytes, the size its
 * header announces), so that a server can count those bytes against its memory before they are read:
 * many connections each sending most of a large frame would otherwise hold that much uncounted. When
 * {@link #reserve} refuses, the decoder consumes nothing and waits; the gate stops the connection's
 * reading and runs {@code retry} (on the connection's event loop) once memory is released. The decoder gives the
 * bytes back with {@link #release} once the frame is decoded (all of them, or all but a write's data,
 * which the request keeps, as the decoder's documentation says), or when the connection ends mid-frame.
 */
public interface FrameGate {
    /** Frames this large or smaller are not gated. */
    int MIN_GATED = 64 * 1024;

    boolean reserve(long bytes, Runnable retry);

    void release(long bytes);
}
