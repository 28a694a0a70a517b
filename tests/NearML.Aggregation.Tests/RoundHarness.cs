using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation.Tests;

/// <summary>Runs one aggregation round in-process, with clients that go silent after a chosen number of messages.</summary>
internal sealed class RoundHarness
{
    public const int Never = 0;
    public const int AfterAdvertise = 1;
    public const int AfterShareKeys = 2;
    public const int AfterMaskedInput = 3;

    public RoundHarness(AggregationConfig config, int seed = 1, Func<int, byte[]?>? identity = null)
    {
        Config = config;
        var rng = new Random(seed);
        int n = (int)config.NumClients;
        uint mask = config.RingBits == 32 ? uint.MaxValue : (1u << (int)config.RingBits) - 1;
        Inputs = new uint[n][];
        Clients = new IAggregationClient[n];
        SendLimit = Enumerable.Repeat(int.MaxValue, n).ToArray();
        for (int i = 0; i < n; i++)
        {
            Inputs[i] = new uint[config.VectorLength];
            for (int j = 0; j < Inputs[i].Length; j++)
            {
                Inputs[i][j] = (uint)rng.NextInt64() & mask;
            }

            Clients[i] = config.Protocol == AggregationProtocol.Plain
                ? new PlainAggregationClient(config, (uint)i, Inputs[i])
                : new SecureAggregationClient(config, (uint)i, Inputs[i], identity?.Invoke(i));
        }

        Server = config.Protocol == AggregationProtocol.Plain ? new PlainAggregationServer(config) : new SecureAggregationServer(config);
    }

    public AggregationConfig Config { get; }

    public uint[][] Inputs { get; }

    public IAggregationClient[] Clients { get; }

    public IAggregationServer Server { get; }

    /// <summary>Messages each client sends before going silent (int.MaxValue = never drops).</summary>
    public int[] SendLimit { get; }

    public List<Exception> Rejected { get; } = [];

    /// <summary>Hook to tamper with server messages before delivery.</summary>
    public Func<ServerMessage, ServerMessage>? Intercept { get; set; }

    private int[] _sent = [];

    public void DropAt(int stage, IEnumerable<int> clients)
    {
        foreach (var c in clients)
        {
            SendLimit[c] = stage;
        }
    }

    public AggregationResult Run()
    {
        _sent = new int[Clients.Length];
        for (int i = 0; i < Clients.Length; i++)
        {
            var m = Clients[i].Start();
            Deliver(i, m);
        }

        while (Server.Phase is not (AggregationPhase.Completed or AggregationPhase.Failed))
        {
            var outgoing = Server.Advance();
            foreach (var sm in outgoing)
            {
                int c = (int)sm.Recipient;
                if (_sent[c] >= SendLimit[c])
                {
                    continue;
                }

                var msg = Intercept is null ? sm : Intercept(sm);
                Deliver(c, Clients[c].Handle(msg));
            }
        }

        return Server.Finish();
    }

    public uint[] ExpectedSum(IEnumerable<uint> contributors)
    {
        var sum = new uint[Config.VectorLength];
        foreach (var c in contributors)
        {
            for (int j = 0; j < sum.Length; j++)
            {
                sum[j] += Inputs[c][j];
            }
        }

        uint mask = Config.RingBits == 32 ? uint.MaxValue : (1u << (int)Config.RingBits) - 1;
        for (int j = 0; j < sum.Length; j++)
        {
            sum[j] &= mask;
        }

        return sum;
    }

    private void Deliver(int client, ClientMessage message)
    {
        if (_sent[client] >= SendLimit[client])
        {
            return;
        }

        _sent[client]++;
        // Round-trip through the wire format, as a transport would.
        var parsed = AggregationRound.ParseClientMessage(Google.Protobuf.MessageExtensions.ToByteArray(message));
        try
        {
            Server.Receive(parsed);
        }
        catch (AggregationProtocolException ex)
        {
            Rejected.Add(ex);
        }
    }
}
