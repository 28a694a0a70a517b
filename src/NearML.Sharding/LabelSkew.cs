using NearML.Core;
using NearML.Sharding.Internal;

namespace NearML.Sharding;

/// <summary>
/// Helpers for non-i.i.d. (label-skewed) data in simulations: order records by label before cutting shards, or
/// partition them across workers the way FedAvg's pathological non-i.i.d. split does (McMahan et al. 2017: sort by
/// label, cut into equal runs, give each worker a few random runs).
/// </summary>
public static class LabelSkew
{
    /// <summary>Returns the record indices ordered by label (stable: ties keep their original order).</summary>
    /// <param name="labels">The label of each record.</param>
    /// <returns>A permutation of [0, labels.Length), e.g. for <see cref="ShardBuilder.BuildIdx"/>'s record order.</returns>
    public static int[] OrderByLabel(ReadOnlySpan<int> labels)
    {
        var keys = labels.ToArray();
        var order = new int[keys.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        // Array.Sort is unstable; sort by (label, index) to make it stable and fully determined.
        var composite = new long[keys.Length];
        for (var i = 0; i < keys.Length; i++)
        {
            composite[i] = ((long)keys[i] << 32) | (uint)i;
        }

        Array.Sort(composite, order);
        return order;
    }

    /// <summary>Reads the labels of an IDX label file (gzip or raw).</summary>
    /// <param name="path">The file.</param>
    /// <returns>The labels.</returns>
    /// <exception cref="InvalidDataFormatException">The file is not a one-dimensional unsigned-byte IDX file.</exception>
    public static int[] ReadIdxLabels(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (dims, payload, _) = IdxCodec.Parse(IdxCodec.ReadFile(path), path);
        if (dims.Length != 1)
        {
            throw new InvalidDataFormatException(path, 3, $"labels must have one dimension but have [{string.Join(", ", dims)}].");
        }

        var span = payload.Span;
        var result = new int[span.Length];
        for (var i = 0; i < span.Length; i++)
        {
            result[i] = span[i];
        }

        return result;
    }

    /// <summary>
    /// Partitions records across workers with label skew: records sorted by label are cut into
    /// <paramref name="workers"/>·<paramref name="runsPerWorker"/> equal runs, the runs are shuffled with
    /// <paramref name="seed"/>, and worker <c>w</c> gets runs <c>w·k … w·k + k − 1</c>. With 10 classes and 2 runs per
    /// worker most workers see only two labels.
    /// </summary>
    /// <param name="labels">The label of each record.</param>
    /// <param name="workers">The number of workers.</param>
    /// <param name="runsPerWorker">Runs per worker (fewer = more skew).</param>
    /// <param name="seed">The shuffle seed.</param>
    /// <returns>For each worker, its record indices (sorted ascending).</returns>
    public static int[][] Partition(ReadOnlySpan<int> labels, int workers, int runsPerWorker, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(workers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(runsPerWorker);
        var runs = workers * runsPerWorker;
        if (labels.Length < runs)
        {
            throw new ArgumentException($"{labels.Length} records cannot form {runs} runs.", nameof(labels));
        }

        var order = OrderByLabel(labels);
        var runIds = new int[runs];
        for (var i = 0; i < runs; i++)
        {
            runIds[i] = i;
        }

        new SplitMix(seed).Shuffle(runIds.AsSpan());
        var result = new int[workers][];
        for (var w = 0; w < workers; w++)
        {
            var list = new List<int>();
            for (var k = 0; k < runsPerWorker; k++)
            {
                var run = runIds[(w * runsPerWorker) + k];
                var from = (int)((long)run * order.Length / runs);
                var to = (int)((long)(run + 1) * order.Length / runs);
                list.AddRange(order.AsSpan(from, to - from).ToArray());
            }

            list.Sort();
            result[w] = [.. list];
        }

        return result;
    }
}
