package io.bridgefs.server.cli;

import sun.misc.Signal;

/** SIGTERM and SIGINT run a graceful stop once, so the process can exit 0 instead of 143/130. */
final class Signals {
    private Signals() {}

    static void onTermination(Runnable stop) {
        java.util.concurrent.atomic.AtomicBoolean once = new java.util.concurrent.atomic.AtomicBoolean();
        sun.misc.SignalHandler h = sig -> {
            if (once.compareAndSet(false, true)) new Thread(io.bridgefs.server.posix.ServerThreads.startingAsServer(stop), "bridgefs-stop").start();
        };
        Signal.handle(new Signal("TERM"), h);
        Signal.handle(new Signal("INT"), h);
    }
}
