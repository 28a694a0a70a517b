using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace NearML.Samples.LocalCluster;

/// <summary>One log file for all hosts of the cluster (the console belongs to the live display).</summary>
internal sealed class FileLog : IDisposable
{
    private readonly StreamWriter _writer;
    private readonly Lock _gate = new();
    private readonly ConcurrentQueue<string> _warnings = new();

    public FileLog(string path)
    {
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    /// <summary>Gets the most recent warnings and errors (for the display).</summary>
    public IReadOnlyCollection<string> Warnings => _warnings;

    public ILoggerProvider Provider(string host) => new HostProvider(this, host);

    public void Dispose()
    {
        lock (_gate)
        {
            _writer.Dispose();
        }
    }

    private void Write(string host, string category, LogLevel level, string message, Exception? exception)
    {
        var line = $"{TimeProvider.System.GetUtcNow():HH:mm:ss.fff} {Short(level)} [{host}] {category}: {message}";
        if (exception is not null)
        {
            line += Environment.NewLine + exception;
        }

        lock (_gate)
        {
            _writer.WriteLine(line);
        }

        if (level >= LogLevel.Warning)
        {
            _warnings.Enqueue($"[{host}] {message}");
            while (_warnings.Count > 3 && _warnings.TryDequeue(out _))
            {
            }
        }
    }

    private static string Short(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        LogLevel.Critical => "crit",
        _ => "none",
    };

    private sealed class HostProvider(FileLog log, string host) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(log, host, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

        public void Dispose()
        {
        }
    }

    private sealed class Logger(FileLog log, string host, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                log.Write(host, category, logLevel, formatter(state, exception), exception);
            }
        }
    }
}
