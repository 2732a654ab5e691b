package io.bridgefs.server.cli;

import java.io.IOException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code bridgefs}: the command-line entry point. Start-up problems end in one line on stderr and exit status 1 or 2. */
@Command(name = "bridgefs", mixinStandardHelpOptions = true, version = "bridgefs 0.1.0",
        subcommands = {ServeCommand.class, StatsCommand.class, CommandLine.HelpCommand.class},
        description = "Host storage for virtual machines over NBD, through one shared page cache.")
public final class Main implements Runnable {

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    public static void main(String[] args) {
        // before any Netty class loads: use the opened java.nio internals (see the jar manifest)
        System.setProperty("io.netty.tryReflectionSetAccessible", "true");
        // leak detection stays on (Netty's "simple" level) but follows one buffer in 1024, not 128: each
        // buffer followed takes a stack trace at every handler it passes, which cost 1.2% of a 4 KiB
        // write's CPU at 128 (perf, 97k writes/s). The tests run with -Dio.netty.leakDetection.level=paranoid.
        if (System.getProperty("io.netty.leakDetection.samplingInterval") == null) {
            System.setProperty("io.netty.leakDetection.samplingInterval", "1024");
        }
        System.exit(run(args));
    }

    static int run(String[] args) {
        List<String> argv;
        try {
            argv = withConfig(Arrays.asList(args));
        } catch (IllegalArgumentException | IOException e) {
            System.err.println("bridgefs: " + message(e));
            return 1;
        }
        if (argv.contains("serve") && !argv.contains("--help") && !argv.contains("-h")) {
            try {
                JvmSizing.ensureSized(args, JvmSizing.size(argv, "--cache-size", ServeCommand.DEFAULT_CACHE_SIZE), JvmSizing.dedup(argv),
                        JvmSizing.bridgedEntries(argv), JvmSizing.maxFids(argv), JvmSizing.size(argv, "--request-memory", ServeCommand.DEFAULT_REQUEST_MEMORY), UserDrop.plan(argv));
            } catch (IOException e) {
                System.err.println("bridgefs: " + message(e));
                return 1;
            }
        }
        CommandLine cl = new CommandLine(new Main());
        cl.setOverwrittenOptionsAllowed(true);
        cl.setParameterExceptionHandler((ex, a) -> {
            System.err.println("bridgefs: " + ex.getMessage() + " (see 'bridgefs serve --help')");
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            System.err.println("bridgefs: " + message(ex));
            return 1;
        });
        return cl.execute(argv.toArray(String[]::new));
    }

    /** For {@code serve}: puts the config file's settings (or the embedded default's) in front of the arguments. */
    static List<String> withConfig(List<String> args) throws IOException {
        int serve = args.indexOf("serve");
        if (serve < 0) return args;
        List<String> before = args.subList(0, serve + 1);
        List<String> rest = new ArrayList<>(args.subList(serve + 1, args.size()));
        if (rest.contains("--help") || rest.contains("-h")) return args;
        String config = null;
        for (int i = 0; i < rest.size(); i++) {
            String a = rest.get(i);
            if (a.equals("--config") && i + 1 < rest.size()) {
                config = rest.get(i + 1);
                rest.remove(i + 1);
                rest.remove(i);
                break;
            }
            if (a.startsWith("--config=")) {
                config = a.substring("--config=".length());
                rest.remove(i);
                break;
            }
        }
        List<ConfigFile.Entry> entries;
        if (config != null) {
            Path p = Path.of(config);
            try {
                entries = ConfigFile.read(p);
            } catch (NoSuchFileException e) {
                throw new IOException("config file " + p + " not found");
            } catch (IOException e) {
                throw new IOException("cannot read config file " + p + ": " + message(e));
            }
        } else if (rest.stream().noneMatch(a -> a.startsWith("--nbd-export") || a.startsWith("--9p-export"))) {
            entries = ConfigFile.embeddedDefault();
        } else {
            entries = List.of();
        }
        Set<String> known = new HashSet<>();
        new CommandLine(new ServeCommand()).getCommandSpec().options().forEach(o -> known.addAll(Arrays.asList(o.names())));
        List<String> out = new ArrayList<>(before);
        out.addAll(ConfigFile.merge(entries, rest, known));
        return out;
    }

    static String message(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getMessage() == null) t = t.getCause();
        if (t instanceof NoSuchFileException n) {
            return (n.getReason() != null ? n.getReason() + ": " : "no such file: ") + n.getFile();
        }
        if (t instanceof java.nio.file.AccessDeniedException a) return "permission denied: " + a.getFile();
        String m = t.getMessage();
        return m != null ? m : t.toString();
    }
}
