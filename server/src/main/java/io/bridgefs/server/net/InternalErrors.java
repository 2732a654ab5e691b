package io.bridgefs.server.net;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Server faults: exceptions no client input should ever cause (a bug, not a bad request). Each is
 * logged where it happens; this counts them for {@code bridgefs_internal_errors_total} and for the
 * fuzzing tests, which require it to stay 0 whatever they send.
 */
public final class InternalErrors {
    private static final AtomicLong COUNT = new AtomicLong();

    private InternalErrors() {}

    public static void record() {
        COUNT.incrementAndGet();
    }

    public static long count() {
        return COUNT.get();
    }
}
