package io.bridgefs.server.cli;

import io.bridgefs.server.BridgefsServer;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.config.ListenAddress;
import io.bridgefs.server.config.NbdExportSpec;
import io.bridgefs.server.config.ServerConfig;
import io.bridgefs.server.config.Sizes;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "serve", sortOptions = false, description = {
        "Serve host images over NBD through one shared page cache.",
        "With neither exports nor --config, serves the embedded default (conf/bridgefs.conf)."})
public final class ServeCommand implements Callable<Integer> {

    @Option(names = "--config", paramLabel = "FILE",
            description = "Read settings from FILE ('setting = value' lines, settings named like the long options). Options on the command line override it.")
    String config;

    @Option(names = "--nbd-listen", paramLabel = "HOST:PORT|unix:PATH", defaultValue = "127.0.0.1:10809",
            description = "Where NBD clients connect (default: ${DEFAULT-VALUE}).")
    String nbdListen;

    @Option(names = "--nbd-export", paramLabel = "NAME=PATH[,ro][,description=TEXT]",
            description = {"An image file to serve (repeatable). The client's export name selects it; the name \"\" or else the first export is the default.",
                    "ro: read-only. description=TEXT (last): shown by nbdinfo --list. create=SIZE: create a sparse image of SIZE if PATH is missing."})
    List<String> nbdExports = new ArrayList<>();

    @Option(names = "--cache-size", paramLabel = "SIZE", defaultValue = "256m",
            description = "Size of the shared page cache, off-heap (default: ${DEFAULT-VALUE}; suffixes k, m, g, t).")
    String cacheSize;

    @Option(names = "--cache-mode", paramLabel = "MODE", defaultValue = "writeback",
            description = "writeback (default: dirty pages flushed on FLUSH/FUA/timer/shutdown), writethrough (written before the reply), directsync (written and synced before the reply).")
    String cacheMode;

    @Option(names = "--metrics-listen", paramLabel = "HOST:PORT",
            description = "Serve Prometheus text at /metrics and JSON at /stats here (off unless given).")
    String metricsListen;

    @Option(names = "--io-threads", paramLabel = "N", defaultValue = "16",
            description = "Threads doing file I/O off the network event loops (default: ${DEFAULT-VALUE}).")
    int ioThreads;

    @Option(names = "--writeback-interval", paramLabel = "SECONDS", defaultValue = "5",
            description = "Write back and sync dirty pages this often; 0 turns the timer off (default: ${DEFAULT-VALUE}).")
    int writebackSeconds;

    @Option(names = {"-h", "--help"}, usageHelp = true, description = "Show this help.")
    boolean help;

    ServerConfig toConfig() {
        List<NbdExportSpec> exports = new ArrayList<>();
        for (String e : nbdExports) exports.add(NbdExportSpec.parse(e));
        if (exports.isEmpty()) throw new IllegalArgumentException("no exports: give --nbd-export NAME=PATH or --config FILE");
        if (ioThreads < 1 || ioThreads > 1024) throw new IllegalArgumentException("--io-threads must be 1..1024");
        if (writebackSeconds < 0) throw new IllegalArgumentException("--writeback-interval must be >= 0");
        return new ServerConfig(ListenAddress.parse(nbdListen), exports, Sizes.parse(cacheSize), CacheMode.parse(cacheMode),
                metricsListen == null || metricsListen.isBlank() ? null : ListenAddress.parse(metricsListen),
                ioThreads, writebackSeconds);
    }

    @Override
    public Integer call() throws Exception {
        ServerConfig cfg = toConfig();
        BridgefsServer server = BridgefsServer.start(cfg);
        System.out.println(server.connectHelp());
        System.out.flush();
        CountDownLatch stopped = new CountDownLatch(1);
        Runnable stop = () -> {
            System.err.println("bridgefs: stopping: finishing in-flight requests and flushing dirty pages");
            try {
                server.close();
                stopped.countDown();
            } catch (Exception e) {
                System.err.println("bridgefs: error while stopping: " + e.getMessage());
                Runtime.getRuntime().halt(1);
            }
        };
        Signals.onTermination(stop);
        stopped.await();
        return 0;
    }
}
