using Google.Protobuf;
using NearML.Core;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation;

/// <summary>A client side of an aggregation round: takes the server's message and returns its answer.</summary>
public interface IAggregationClient
{
    /// <summary>Gets the client's id in the cohort (0 .. n−1).</summary>
    uint ClientId { get; }

    /// <summary>Gets the phase whose server message the client awaits next (Completed after its last answer, Failed after a refusal).</summary>
    AggregationPhase Phase { get; }

    /// <summary>Gets the reason the client refused to continue, if it did.</summary>
    string? RefusalReason { get; }

    /// <summary>Produces the client's first message (its keys, or its input for plain aggregation).</summary>
    /// <returns>The message to send to the server.</returns>
    ClientMessage Start();

    /// <summary>Handles one server message and returns the answer (possibly a <see cref="Refusal"/>).</summary>
    /// <param name="message">The server's message.</param>
    /// <returns>The message to send to the server.</returns>
    /// <exception cref="AggregationProtocolException">The message is malformed, for another job/round or phase; state is unchanged.</exception>
    ClientMessage Handle(ServerMessage message);
}

/// <summary>The server side of an aggregation round: collects client messages per phase and advances.</summary>
public interface IAggregationServer
{
    /// <summary>Gets the phase whose client messages are being collected.</summary>
    AggregationPhase Phase { get; }

    /// <summary>Accepts one client message for the current phase.</summary>
    /// <param name="message">The client's message.</param>
    /// <exception cref="AggregationProtocolException">The message was rejected; the round continues without it.</exception>
    void Receive(ClientMessage message);

    /// <summary>Closes the current phase (the clients that have not answered are dropped) and returns the messages of the next.</summary>
    /// <returns>One message per recipient; empty when the round is complete.</returns>
    /// <exception cref="AggregationFailedException">Too few clients remain; the round failed and no sum is released.</exception>
    IReadOnlyList<ServerMessage> Advance();

    /// <summary>Gets the result of a completed round.</summary>
    /// <returns>The sum of the surviving clients' inputs.</returns>
    /// <exception cref="InvalidOperationException">The round is not complete.</exception>
    AggregationResult Finish();
}

/// <summary>The outcome of a completed aggregation round.</summary>
public sealed class AggregationResult
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="sum">Sum of the contributors' ring vectors, reduced mod 2^<paramref name="ringBits"/>.</param>
    /// <param name="ringBits">Ring size b.</param>
    /// <param name="contributors">Clients whose inputs are in the sum, ascending.</param>
    public AggregationResult(uint[] sum, int ringBits, IReadOnlyList<uint> contributors)
    {
        ArgumentNullException.ThrowIfNull(sum);
        ArgumentNullException.ThrowIfNull(contributors);
        Sum = sum;
        RingBits = ringBits;
        Contributors = contributors;
    }

    /// <summary>Gets the sum of the contributors' ring vectors, mod 2^<see cref="RingBits"/>.</summary>
    public uint[] Sum { get; }

    /// <summary>Gets the ring size b.</summary>
    public int RingBits { get; }

    /// <summary>Gets the clients whose inputs are in the sum, ascending.</summary>
    public IReadOnlyList<uint> Contributors { get; }
}

/// <summary>Creating and checking round configurations, and parsing wire messages with typed errors.</summary>
public static class AggregationRound
{
    /// <summary>Largest cohort supported.</summary>
    public const int MaxClients = 100_000;

    /// <summary>Largest vector (ring elements) supported.</summary>
    public const int MaxVectorLength = 1 << 28;

    /// <summary>
    /// Creates the configuration of one round. For SecAgg+ the degree and threshold come from
    /// <see cref="SecAggParameters.Find"/>; for SecAgg the graph is complete with t = max(⌊(n − 1 + ⌊γn⌋)/2⌋ + 1, 2), the
    /// smallest threshold at which ⌊γn⌋ clients colluding with a malicious server cannot complete a split view. The graph
    /// seed and the session nonce are fresh CSPRNG output.
    /// </summary>
    /// <param name="jobId">Job identifier (non-empty).</param>
    /// <param name="round">Aggregation round number.</param>
    /// <param name="protocol">Protocol to run.</param>
    /// <param name="clients">Cohort size n.</param>
    /// <param name="vectorLength">Ring elements per input.</param>
    /// <param name="ringBits">Ring size b (1..32).</param>
    /// <param name="corruptFraction">γ for the parameter finder.</param>
    /// <param name="dropoutFraction">δ for the parameter finder.</param>
    /// <param name="identityKeys">ed25519 identity public keys per client id for the active variant; null for semi-honest.</param>
    /// <returns>The configuration, to be sent to every participant.</returns>
    public static AggregationConfig CreateConfig(
        string jobId, ulong round, AggregationProtocol protocol, int clients, int vectorLength, int ringBits,
        double corruptFraction = 0.05, double dropoutFraction = 0.05, IReadOnlyList<byte[]>? identityKeys = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobId);
        ArgumentOutOfRangeException.ThrowIfLessThan(clients, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(clients, MaxClients);
        ArgumentOutOfRangeException.ThrowIfLessThan(vectorLength, 1);
        RingPacking.ValidateBits(ringBits);
        int k, t;
        switch (protocol)
        {
            case AggregationProtocol.SecaggPlus:
                var p = SecAggParameters.Find(clients, corruptFraction, dropoutFraction);
                (k, t) = (p.Degree, p.Threshold);
                break;
            case AggregationProtocol.Secagg:
                // Complete graph: t > (k + c)/2, so no two disjoint groups of honest clients can each bring t shares of one
                // client's two secrets with the c colluders' help (split view), and t > c.
                if (corruptFraction is < 0 or >= 1 || double.IsNaN(corruptFraction))
                {
                    throw new ArgumentOutOfRangeException(nameof(corruptFraction), corruptFraction, "must be in [0, 1)");
                }

                k = clients - 1;
                t = Math.Min(k, SecAggParameters.MaliciousCompleteThreshold(clients, SecAggParameters.Count(corruptFraction, clients)));
                break;
            case AggregationProtocol.Plain:
                (k, t) = (0, 0);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "unknown protocol");
        }

        return CreateConfig(jobId, round, protocol, clients, vectorLength, ringBits, k, t, identityKeys);
    }

    /// <summary>Creates the configuration of one round with an explicit degree and threshold.</summary>
    /// <param name="jobId">Job identifier (non-empty).</param>
    /// <param name="round">Aggregation round number.</param>
    /// <param name="protocol">Protocol to run.</param>
    /// <param name="clients">Cohort size n.</param>
    /// <param name="vectorLength">Ring elements per input.</param>
    /// <param name="ringBits">Ring size b (1..32).</param>
    /// <param name="degree">Graph degree k (even for SecAgg+, n − 1 for SecAgg).</param>
    /// <param name="threshold">Shamir threshold t.</param>
    /// <param name="identityKeys">ed25519 identity public keys per client id for the active variant; null for semi-honest.</param>
    /// <returns>The configuration.</returns>
    public static AggregationConfig CreateConfig(
        string jobId, ulong round, AggregationProtocol protocol, int clients, int vectorLength, int ringBits,
        int degree, int threshold, IReadOnlyList<byte[]>? identityKeys = null)
    {
        var seed = new byte[32];
        System.Security.Cryptography.RandomNumberGenerator.Fill(seed);
        var nonce = new byte[32];
        System.Security.Cryptography.RandomNumberGenerator.Fill(nonce);
        var config = new AggregationConfig
        {
            JobId = jobId,
            Round = round,
            Protocol = protocol,
            NumClients = (uint)clients,
            Degree = (uint)degree,
            Threshold = (uint)threshold,
            RingBits = (uint)ringBits,
            VectorLength = (uint)vectorLength,
            GraphSeed = ByteString.CopyFrom(seed),
            SessionNonce = ByteString.CopyFrom(nonce),
            Active = identityKeys is not null,
        };
        if (identityKeys is not null)
        {
            foreach (var key in identityKeys)
            {
                config.IdentityKeys.Add(ByteString.CopyFrom(key));
            }
        }

        Validate(config);
        return config;
    }

    /// <summary>Checks a configuration; throws <see cref="ArgumentException"/> naming the offending field.</summary>
    /// <param name="config">The configuration.</param>
    public static void Validate(AggregationConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (string.IsNullOrEmpty(config.JobId))
        {
            throw new ArgumentException("job_id is empty", nameof(config));
        }

        if (config.NumClients < 2 || config.NumClients > MaxClients)
        {
            throw new ArgumentException($"num_clients = {config.NumClients} outside 2..{MaxClients}", nameof(config));
        }

        if (config.VectorLength < 1 || config.VectorLength > MaxVectorLength)
        {
            throw new ArgumentException($"vector_length = {config.VectorLength} outside 1..{MaxVectorLength}", nameof(config));
        }

        if (config.RingBits is < 1 or > 32)
        {
            throw new ArgumentException($"ring_bits = {config.RingBits} outside 1..32", nameof(config));
        }

        if (config.Protocol == AggregationProtocol.Plain)
        {
            return;
        }

        if (config.Protocol is not (AggregationProtocol.Secagg or AggregationProtocol.SecaggPlus))
        {
            throw new ArgumentException($"protocol = {config.Protocol} is not supported", nameof(config));
        }

        uint n = config.NumClients;
        if (config.Protocol == AggregationProtocol.Secagg && config.Degree != n - 1)
        {
            throw new ArgumentException($"degree = {config.Degree} but SecAgg uses the complete graph (n − 1 = {n - 1})", nameof(config));
        }

        if (config.Protocol == AggregationProtocol.SecaggPlus && (config.Degree < 2 || config.Degree > n - 1 || (config.Degree < n - 1 && config.Degree % 2 != 0)))
        {
            throw new ArgumentException($"degree = {config.Degree} must be even and in 2..n−1 = {n - 1}", nameof(config));
        }

        if (config.Threshold < 2 || config.Threshold > config.Degree)
        {
            throw new ArgumentException($"threshold = {config.Threshold} outside 2..degree = {config.Degree}", nameof(config));
        }

        if (config.GraphSeed.Length != 32)
        {
            throw new ArgumentException($"graph_seed has {config.GraphSeed.Length} bytes, 32 expected", nameof(config));
        }

        if (config.SessionNonce.Length != 32)
        {
            throw new ArgumentException($"session_nonce has {config.SessionNonce.Length} bytes, 32 expected", nameof(config));
        }

        if (config.Active && config.IdentityKeys.Count != n)
        {
            throw new ArgumentException($"active variant needs {n} identity_keys, got {config.IdentityKeys.Count}", nameof(config));
        }

        if (config.Active && 2 * config.Threshold <= config.Degree)
        {
            // Split view: two disjoint groups of ⌊k/2⌋ honest neighbours could each be shown another survivor set and
            // together reveal t shares of both of one client's secrets.
            throw new ArgumentException($"threshold = {config.Threshold} is not above degree/2 = {config.Degree}/2 (split view): a malicious server could unmask an input by showing its neighbours different survivor sets", nameof(config));
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < config.IdentityKeys.Count; i++)
        {
            if (config.IdentityKeys[i].Length != 32)
            {
                throw new ArgumentException($"identity_keys[{i}] has {config.IdentityKeys[i].Length} bytes, 32 expected", nameof(config));
            }

            if (!seen.Add(Convert.ToBase64String(config.IdentityKeys[i].Span)))
            {
                throw new ArgumentException($"identity_keys[{i}] repeats an earlier client's identity key", nameof(config));
            }
        }
    }

    /// <summary>Parses a client message from the wire.</summary>
    /// <param name="bytes">The serialized message.</param>
    /// <returns>The message.</returns>
    /// <exception cref="InvalidDataFormatException">The bytes are not a valid message.</exception>
    public static ClientMessage ParseClientMessage(ReadOnlySpan<byte> bytes) => Parse(ClientMessage.Parser, bytes, "ClientMessage");

    /// <summary>Parses a server message from the wire.</summary>
    /// <param name="bytes">The serialized message.</param>
    /// <returns>The message.</returns>
    /// <exception cref="InvalidDataFormatException">The bytes are not a valid message.</exception>
    public static ServerMessage ParseServerMessage(ReadOnlySpan<byte> bytes) => Parse(ServerMessage.Parser, bytes, "ServerMessage");

    /// <summary>Creates an ed25519 identity key pair for the active variant from the CSPRNG.</summary>
    /// <returns>The 32-byte private key and 32-byte public key.</returns>
    public static (byte[] PrivateKey, byte[] PublicKey) CreateIdentityKey()
    {
        var sk = new byte[32];
        System.Security.Cryptography.RandomNumberGenerator.Fill(sk);
        return (sk, Internal.Signatures.PublicKeyOf(sk));
    }

    private static T Parse<T>(MessageParser<T> parser, ReadOnlySpan<byte> bytes, string what)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new InvalidDataFormatException(what, -1, ex.Message, ex);
        }
    }
}
