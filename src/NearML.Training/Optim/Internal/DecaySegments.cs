using NearML.Core;

namespace NearML.Training.Optim.Internal;

/// <summary>Runs of consecutive tensors that do or do not get weight decay (one run when every tensor does).</summary>
internal sealed class DecaySegments
{
    public DecaySegments(ParameterLayout layout, Func<TensorEntry, bool>? filter)
    {
        var list = new List<(int Start, int Length, bool Decays)>();
        foreach (var e in layout.Entries)
        {
            var decays = filter?.Invoke(e) ?? true;
            if (decays)
            {
                DecayedTensors++;
            }

            if (list.Count > 0 && list[^1].Decays == decays)
            {
                var last = list[^1];
                list[^1] = (last.Start, last.Length + e.Length, decays);
            }
            else
            {
                list.Add(((int)e.Offset, e.Length, decays));
            }
        }

        Segments = [.. list];
    }

    public (int Start, int Length, bool Decays)[] Segments { get; }

    public int DecayedTensors { get; }
}
