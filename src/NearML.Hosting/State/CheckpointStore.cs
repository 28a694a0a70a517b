using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Threading.Channels;
using NearML.Core;

namespace NearML.Hosting.State;

/// <summary>The state of the outer optimizer after a round: global parameters, Nesterov momentum and step count.</summary>
/// <param name="Round">The last round included.</param>
/// <param name="ParameterVersion">The parameter version (outer steps applied).</param>
/// <param name="Parameters">The global parameters.</param>
/// <param name="Momentum">The outer momentum buffer (same layout).</param>
public sealed record CoordinatorCheckpoint(long Round, long ParameterVersion, ParameterSet Parameters, ParameterSet Momentum);

/// <summary>
/// Writes checkpoints <c>checkpoints/round-000123.safetensors</c> (tensors <c>param.*</c> and <c>outer_momentum.*</c>,
/// metadata with the job, round and version) atomically: to a temporary file, flushed to the device (fsync), then
/// renamed over the final name; only then is the file's SHA-256 indexed in the state database. Writes happen on a
/// background task so rounds do not wait for the disk; <see cref="FlushAsync"/> waits for the queue to drain.
/// </summary>
public sealed class CheckpointStore : IAsyncDisposable
{
    /// <summary>The name of the checkpoint folder inside the state folder.</summary>
    public const string FolderName = "checkpoints";

    /// <summary>The suffix of a checkpoint being written (renamed away once it is durable).</summary>
    public const string TemporarySuffix = ".tmp";

    private const string ParamPrefix = "param.";
    private const string MomentumPrefix = "outer_momentum.";
    private readonly ICheckpointIndex _state;
    private readonly string _jobId;
    private readonly int _keep;
    private readonly TimeProvider _time;
    private readonly Action<Exception>? _onError;
    private readonly Channel<(CoordinatorCheckpoint? Checkpoint, Action<CoordinatorCheckpoint>? Written, TaskCompletionSource? Flushed, ActivityContext Parent)> _queue =
        Channel.CreateUnbounded<(CoordinatorCheckpoint?, Action<CoordinatorCheckpoint>?, TaskCompletionSource?, ActivityContext)>(new UnboundedChannelOptions { SingleReader = true });
    private ParameterLayout? _sourceLayout;
    private ParameterLayout? _fileLayout;
    private readonly Task _writer;

    /// <summary>
    /// Initializes the store and starts its writer. Temporary files left by a write that failed or was interrupted
    /// (<c>*.safetensors.tmp</c>) are removed first: they are never indexed, and on a full disk they keep it full.
    /// </summary>
    /// <param name="directory">The checkpoint folder.</param>
    /// <param name="state">The index.</param>
    /// <param name="jobId">The job id written into the metadata.</param>
    /// <param name="keep">How many files to keep.</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="onError">Told about a failed write (the next write tries again).</param>
    public CheckpointStore(string directory, ICheckpointIndex state, string jobId, int keep, TimeProvider timeProvider, Action<Exception>? onError = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(state);
        Directory = System.IO.Directory.CreateDirectory(directory).FullName;
        RemovedTemporaryFiles = RemoveTemporaryFiles(Directory);
        _state = state;
        _jobId = jobId;
        _keep = Math.Max(1, keep);
        _time = timeProvider;
        _onError = onError;
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>Gets the checkpoint folder.</summary>
    public string Directory { get; }

    /// <summary>Gets the stale temporary files removed when the store was opened.</summary>
    public IReadOnlyList<string> RemovedTemporaryFiles { get; }

    /// <summary>Gets the number of checkpoints written by this instance.</summary>
    public int Written { get; private set; }

    /// <summary>Gets the file name of a round's checkpoint.</summary>
    /// <param name="round">The round.</param>
    /// <returns>For example <c>round-000123.safetensors</c>.</returns>
    public static string FileName(long round) => $"round-{round.ToString("D6", CultureInfo.InvariantCulture)}.safetensors";

    /// <summary>Queues a checkpoint (the caller must not change the sets afterwards: pass copies).</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    public void Enqueue(CoordinatorCheckpoint checkpoint) => Enqueue(checkpoint, null);

    /// <summary>
    /// Queues a checkpoint whose sets the caller lends until <paramref name="written"/> is called (after the write, whether
    /// it succeeded or failed): the caller must not change them before then, and may reuse them afterwards.
    /// </summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <param name="written">Called on the writer's task once the sets are no longer read, or <see langword="null"/>.</param>
    /// <exception cref="InvalidOperationException">The store is closed (<paramref name="written"/> is not called).</exception>
    public void Enqueue(CoordinatorCheckpoint checkpoint, Action<CoordinatorCheckpoint>? written)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (!_queue.Writer.TryWrite((checkpoint, written, null, Activity.Current?.Context ?? default)))
        {
            throw new InvalidOperationException("The checkpoint store is closed.");
        }
    }

    /// <summary>Waits until every queued checkpoint is written (or failed).</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task.</returns>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite((null, null, done, default)))
        {
            return;
        }

        await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a checkpoint now, on the calling thread, and indexes it.</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <returns>The index record.</returns>
    public CheckpointRecord Write(CoordinatorCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var layout = checkpoint.Parameters.Layout;
        checkpoint.Momentum.Layout.EnsureSameAs(layout);
        var fileLayout = FileLayout(layout);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["nearml.job"] = _jobId,
            ["nearml.round"] = checkpoint.Round.ToString(CultureInfo.InvariantCulture),
            ["nearml.parameter_version"] = checkpoint.ParameterVersion.ToString(CultureInfo.InvariantCulture),
            ["nearml.parameters_sha256"] = Convert.ToHexStringLower(checkpoint.Parameters.ComputeHash()),
        };

        var path = Path.Combine(Directory, FileName(checkpoint.Round));
        var temp = path + TemporarySuffix;
        byte[] hash;
        long bytes;
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                using (var hashing = new HashingStream(fs))
                {
                    // The parameters and the momentum are written straight from the caller's sets (no combined copy).
                    SafeTensors.Write(hashing, fileLayout, [checkpoint.Parameters.Buffer.AsMemory(0, checkpoint.Parameters.Length), checkpoint.Momentum.Buffer.AsMemory(0, checkpoint.Momentum.Length)], metadata);
                    hash = hashing.GetHash();
                }

                fs.Flush(flushToDisk: true);
                bytes = fs.Length;
            }

            File.Move(temp, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A failed write (typically a full disk) must not leave its partial file behind: it would keep the disk full.
            TryDelete(temp);
            throw new IOException($"writing checkpoint of round {checkpoint.Round} to '{path}' failed: {ex.Message}", ex);
        }

        var record = new CheckpointRecord(checkpoint.Round, checkpoint.ParameterVersion, path, Convert.ToHexStringLower(hash), bytes);
        _state.RecordCheckpoint(record, _time.GetUtcNow().ToUnixTimeMilliseconds());
        Written++;
        Prune();
        return record;
    }

    /// <summary>Loads the newest indexed checkpoint after checking the file's SHA-256 against the index.</summary>
    /// <param name="state">The index.</param>
    /// <param name="layout">The model's parameter layout.</param>
    /// <returns>The checkpoint, or <see langword="null"/> when none was indexed.</returns>
    /// <exception cref="CoordinatorStateException">The file is missing, corrupt, or holds another layout.</exception>
    public static CoordinatorCheckpoint? LoadLatest(ICheckpointIndex state, ParameterLayout layout)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(layout);
        var record = state.LatestCheckpoint();
        if (record is null)
        {
            return null;
        }

        const string Advice = "Restore the file from a backup, or start the job over with an empty DataDirectory.";
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(record.Path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CoordinatorStateException($"checkpoint of round {record.Round} '{record.Path}' (indexed in {state.Location}) cannot be read: {ex.Message}. {Advice}", ex);
        }

        var actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (actual != record.FileSha256)
        {
            throw new CoordinatorStateException(
                $"checkpoint of round {record.Round} '{record.Path}' is corrupt: its SHA-256 is {actual} but {state.Location} recorded {record.FileSha256} when it was written ({bytes.Length} bytes now, {record.Bytes} then). {Advice}");
        }

        SafeTensorsContent content;
        try
        {
            using var ms = new MemoryStream(bytes, writable: false);
            content = SafeTensors.Read(ms, record.Path);
        }
        catch (InvalidDataFormatException ex)
        {
            throw new CoordinatorStateException($"checkpoint '{record.Path}' does not parse: {ex.Message}. {Advice}", ex);
        }

        var parameters = new ParameterSet(layout);
        var momentum = new ParameterSet(layout);
        foreach (var e in layout.Entries)
        {
            if (!content.Parameters.Layout.TryGet(ParamPrefix + e.Name, out var p) || !content.Parameters.Layout.TryGet(MomentumPrefix + e.Name, out var m)
                || !p.Shape.SequenceEqual(e.Shape) || !m.Shape.SequenceEqual(e.Shape))
            {
                throw new CoordinatorStateException($"checkpoint '{record.Path}' has no tensor '{e.Name}' {e.ShapeText} (or not that shape): it was written for another model.");
            }

            content.Parameters.GetSpan(ParamPrefix + e.Name).CopyTo(parameters.GetSpan(e.Name));
            content.Parameters.GetSpan(MomentumPrefix + e.Name).CopyTo(momentum.GetSpan(e.Name));
        }

        if (content.Metadata.TryGetValue("nearml.parameters_sha256", out var ph) && ph != Convert.ToHexStringLower(parameters.ComputeHash()))
        {
            throw new CoordinatorStateException($"checkpoint '{record.Path}': the parameters do not match the hash in its own metadata. {Advice}");
        }

        return new CoordinatorCheckpoint(record.Round, record.ParameterVersion, parameters, momentum);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
    }

    private async Task WriteLoopAsync()
    {
        await foreach (var (checkpoint, written, flushed, parent) in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (checkpoint is not null)
            {
                using var span = NearMLTracing.Start(NearMLTracing.Checkpoint, parent);
                span?.SetTag("nearml.round", checkpoint.Round);
                try
                {
                    Write(checkpoint);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CoordinatorStateException)
                {
                    NearMLTracing.Fail(span, ex);
                    _onError?.Invoke(ex);
                }
                finally
                {
                    written?.Invoke(checkpoint);
                }
            }

            flushed?.TrySetResult();
        }
    }

    /// <summary>The file's layout: <c>param.*</c> then <c>outer_momentum.*</c> (built once per model layout).</summary>
    private ParameterLayout FileLayout(ParameterLayout layout)
    {
        lock (_queue)
        {
            if (_fileLayout is null || !ReferenceEquals(_sourceLayout, layout))
            {
                var tensors = new List<(string, int[])>(layout.Count * 2);
                tensors.AddRange(layout.Entries.Select(e => (ParamPrefix + e.Name, e.Shape.ToArray())));
                tensors.AddRange(layout.Entries.Select(e => (MomentumPrefix + e.Name, e.Shape.ToArray())));
                _fileLayout = new ParameterLayout(tensors);
                _sourceLayout = layout;
            }

            return _fileLayout;
        }
    }

    /// <summary>Deletes the temporary files of interrupted or failed checkpoint writes in <paramref name="directory"/>.</summary>
    /// <param name="directory">The checkpoint folder.</param>
    /// <returns>The files removed.</returns>
    public static IReadOnlyList<string> RemoveTemporaryFiles(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            return [];
        }

        var removed = new List<string>();
        foreach (var file in System.IO.Directory.EnumerateFiles(directory, "*" + TemporarySuffix))
        {
            if (TryDelete(file))
            {
                removed.Add(file);
            }
        }

        return removed;
    }

    private static bool TryDelete(string file)
    {
        try
        {
            File.Delete(file);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private void Prune()
    {
        var all = _state.ListCheckpoints();
        for (var i = 0; i < all.Count - _keep; i++)
        {
            try
            {
                File.Delete(all[i].Path);
                _state.ForgetCheckpoint(all[i].Round);
            }
            catch (Exception ex) when (ex is IOException or CoordinatorStateException)
            {
                // Keep the index entry; the next prune tries again.
            }
        }
    }

    /// <summary>A write-only stream that hashes what passes through.</summary>
    private sealed class HashingStream(Stream inner) : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public byte[] GetHash() => _hash.GetHashAndReset();

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _hash.AppendData(buffer);
            inner.Write(buffer);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _hash.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
